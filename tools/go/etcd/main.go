// Command etcd is etcd's own server entry point: the server module ships etcdmain but its
// main package lives in etcd's root module, which is not meant to be imported.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
