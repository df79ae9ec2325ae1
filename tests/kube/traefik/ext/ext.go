// Package ext stands in for Traefik's nested module github.com/traefik/traefik/dynamic/ext, which lives in
// Traefik's repository (pkg/config/dynamic/ext) but is in no module zip: the proxy cannot serve it, and
// Traefik's go.mod reaches it with a replace to its own tree. Upstream's package holds empty extension
// points (embedded in dynamic.HTTP and dynamic.Router); these are the two that v3.7.13 uses.
package ext

// HTTP is embedded in Traefik's dynamic.HTTP; empty in upstream's open-source build.
type HTTP struct{}

// Router is embedded in Traefik's dynamic.Router; empty in upstream's open-source build.
type Router struct{}
