// Command etcd: the etcd server, built by the suite's bundle builder from the
// go.etcd.io/etcd/server/v3 module (whose own main lives in a module the proxy does not serve).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
