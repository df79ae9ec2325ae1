// Command kube-testserver is the tiny static program packed into the test cluster's local image
// (mcp-runtime.local/kube-testserver). The tier-2 smoke tests run it in pods:
//
//	kube-testserver                 serve JSON {"hostname": ..., "path": ...} on :8080 (or $PORT)
//	kube-testserver get URL         GET URL and print the body (exit 1 on a non-2xx answer)
//	kube-testserver get-api PATH    GET PATH on the API server through the `kubernetes` Service with the
//	                                pod's service-account token and CA, as in-cluster clients do
//
// Together they prove image import, runc, the CNI bridge, kube-proxy and pod-to-API-server traffic.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func main() {
	if len(os.Args) == 3 && os.Args[1] == "get" {
		os.Exit(get(http.DefaultClient, os.Args[2], ""))
	}
	if len(os.Args) == 3 && os.Args[1] == "get-api" {
		os.Exit(getAPI(os.Args[2]))
	}
	if len(os.Args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: kube-testserver [get URL | get-api PATH]")
		os.Exit(2)
	}
	serve()
}

func get(client *http.Client, url, token string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	fmt.Println(strings.TrimSpace(string(body)))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintf(os.Stderr, "HTTP %d\n", resp.StatusCode)
		return 1
	}
	return 0
}

func getAPI(path string) int {
	token, err := os.ReadFile(serviceAccountDir + "/token")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ca, err := os.ReadFile(serviceAccountDir + "/ca.crt")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		fmt.Fprintln(os.Stderr, "no certificate in", serviceAccountDir+"/ca.crt")
		return 2
	}
	host := net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	return get(client, "https://"+host+path, strings.TrimSpace(string(token)))
}

func serve() {
	addr := ":8080"
	if port := os.Getenv("PORT"); port != "" {
		addr = ":" + port
	}
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"hostname": host, "path": r.URL.Path})
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("kube-testserver listening on %s", addr)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
