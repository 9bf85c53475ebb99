// Command testapp: the offline bundle's small test workload. One static binary, no shell needed.
//
//	testapp serve            HTTP on $PORT (80): / says who answered, /healthz, /resolve?name=,
//	                         /dial?address=host:port, /files/NAME (GET reads, PUT writes $DATA_DIR)
//	testapp write PATH TEXT  write TEXT to PATH (for kubectl exec)
//	testapp read PATH        print PATH
//	testapp resolve NAME     print NAME's addresses
//	testapp dial HOST:PORT   open a TCP connection and close it
//	testapp sleep            wait until stopped
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const dialTimeout = 5 * time.Second

func main() {
	command := "serve"
	if len(os.Args) > 1 {
		command = os.Args[1]
	}
	if err := run(command, os.Args[min(2, len(os.Args)):]); err != nil {
		fmt.Fprintf(os.Stderr, "testapp %s: %v\n", command, err)
		os.Exit(1)
	}
}

func run(command string, args []string) error {
	need := map[string]int{"serve": 0, "sleep": 0, "read": 1, "resolve": 1, "dial": 1, "write": 2}
	count, known := need[command]
	if !known {
		return fmt.Errorf("unknown command (serve, write, read, resolve, dial, sleep)")
	}
	if len(args) != count {
		return fmt.Errorf("takes %d argument(s), got %d", count, len(args))
	}
	switch command {
	case "serve":
		return serve(env("PORT", "80"))
	case "sleep":
		waitForStop()
		return nil
	case "read":
		data, err := os.ReadFile(args[0])
		if err == nil {
			_, err = os.Stdout.Write(data)
		}
		return err
	case "write":
		return os.WriteFile(args[0], []byte(args[1]), 0o644)
	case "resolve":
		addresses, err := net.LookupHost(args[0])
		if err == nil {
			fmt.Println(strings.Join(addresses, " "))
		}
		return err
	default: // dial
		return dial(args[0])
	}
}

func env(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

func waitForStop() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}

func dial(address string) error {
	conn, err := net.DialTimeout("tcp", address, dialTimeout)
	if err == nil {
		err = conn.Close()
	}
	return err
}

func serve(port string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/", whoAnswered)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/resolve", func(w http.ResponseWriter, r *http.Request) {
		addresses, err := net.LookupHost(r.URL.Query().Get("name"))
		answer(w, map[string]any{"addresses": addresses}, err)
	})
	mux.HandleFunc("/dial", func(w http.ResponseWriter, r *http.Request) {
		answer(w, map[string]any{"connected": true}, dial(r.URL.Query().Get("address")))
	})
	mux.HandleFunc("/files/", files)
	server := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		waitForStop()
		server.Close()
	}()
	if err := server.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}

func whoAnswered(w http.ResponseWriter, _ *http.Request) {
	host, _ := os.Hostname()
	answer(w, map[string]any{
		"hostname": host,
		"pod":      os.Getenv("POD_NAME"),
		"node":     os.Getenv("NODE_NAME"),
	}, nil)
}

func files(w http.ResponseWriter, r *http.Request) {
	name := filepath.Base(r.URL.Path)
	path := filepath.Join(env("DATA_DIR", "/data"), name)
	switch r.Method {
	case http.MethodGet:
		data, err := os.ReadFile(path)
		answer(w, map[string]any{"path": path, "content": string(data)}, err)
	case http.MethodPut:
		data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err == nil {
			err = os.WriteFile(path, data, 0o644)
		}
		answer(w, map[string]any{"path": path, "written": len(data)}, err)
	default:
		http.Error(w, "GET or PUT", http.StatusMethodNotAllowed)
	}
}

func answer(w http.ResponseWriter, body map[string]any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		body = map[string]any{"error": err.Error()}
	}
	json.NewEncoder(w).Encode(body)
}
