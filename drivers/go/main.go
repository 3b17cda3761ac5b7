// lockbench's Go lock-library drivers, one binary:
//
//	lockbench-go-driver etcd-mutex   etcd's clientv3/concurrency Mutex
//	lockbench-go-driver redsync      go-redsync's Mutex over Redis masters
//	lockbench-go-driver bench LIBRARY SERVERS OPTIONS CYCLES [paced]
//	                                 the library looping on its own
//	lockbench-go-driver --list       its drivers' names, as a JSON array
//
// It speaks drivers/PROTOCOL.md on stdin and stdout and logs to stderr.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"strings"
)

func buildVersion(path string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path == path {
			if dep.Replace != nil {
				return dep.Replace.Version
			}
			return trimV(dep.Version)
		}
	}
	return "unknown"
}

func trimV(v string) string {
	if len(v) > 1 && v[0] == 'v' {
		return v[1:]
	}
	return v
}

// libs holds every driver, by the name lockbench runs it with; each
// driver's file registers itself from its init function.
var libs = map[string]func() library{}

func register(name string, make func() library) {
	if _, dup := libs[name]; dup {
		panic("two drivers named " + name)
	}
	libs[name] = make
}

func main() {
	names := make([]string, 0, len(libs))
	for name := range libs {
		names = append(names, name)
	}
	sort.Strings(names)
	if len(os.Args) == 2 && os.Args[1] == "--list" {
		out, _ := json.Marshal(names)
		fmt.Println(string(out))
		return
	}
	which := strings.Join(names, "|")
	usage := "usage: lockbench-go-driver " + which + " (then drivers/PROTOCOL.md on stdin)\n" +
		"       lockbench-go-driver bench " + which + " SERVERS_JSON OPTIONS_JSON CYCLES [paced]\n" +
		"       lockbench-go-driver --list"
	if len(os.Args) >= 3 && os.Args[1] == "bench" && libs[os.Args[2]] != nil {
		if err := benchLoop(libs[os.Args[2]](), os.Args[3:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) != 2 || libs[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	run(libs[os.Args[1]]())
}
