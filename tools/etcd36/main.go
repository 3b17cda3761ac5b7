// Command etcd is etcd's own server, at the version go.mod pins, built from
// the Go module proxy: lockbench's etcd-3.6 backend runs it beside
// Debian's etcd 3.4 (docs/scenarios.md, "Server versions").
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
