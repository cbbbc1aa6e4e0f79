// Command httpstatic is a tiny static HTTP server for the network benchmark
// (scripts/bench-net.sh): unlike busybox httpd it keeps connections alive, so that the
// cost of the port publishing proxy is measured on requests rather than on connects.
// Built with CGO_ENABLED=0 into the benchmark's busybox image.
//
//	httpstatic [-addr :8080] [-root /www]
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
	"time"
)

func main() {
	addr := flag.String("addr", ":8080", "listen address")
	root := flag.String("root", "/www", "directory served")
	flag.Parse()
	// os.Root keeps every request path inside the directory, symlinks included.
	r, err := os.OpenRoot(*root)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Addr:              *addr,
		Handler:           http.FileServerFS(r.FS()),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	log.Fatal(srv.ListenAndServe())
}
