/*
 * pause: the first process of every pod sandbox. It keeps the pod's namespaces alive, reaps
 * orphaned children when it runs as PID 1, and exits cleanly when asked to stop.
 * Written for the k8s-cluster suite's offline bundle; built statically with any C compiler.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signo) {
  (void)signo;
  _exit(0);
}

static void reap(int signo) {
  (void)signo;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) {
    puts("pause (k8s-cluster offline bundle)");
    return 0;
  }
  if (getpid() != 1) {
    fputs("pause: not running as PID 1, orphans will not be reaped\n", stderr);
  }
  struct sigaction on_stop = {.sa_handler = stop};
  struct sigaction on_child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGINT, &on_stop, NULL) || sigaction(SIGTERM, &on_stop, NULL) ||
      sigaction(SIGCHLD, &on_child, NULL)) {
    perror("pause: sigaction");
    return 1;
  }
  for (;;) {
    pause();
  }
}
