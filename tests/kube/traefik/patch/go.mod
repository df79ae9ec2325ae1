// Not a module to build: it only keeps these files, which ../../traefik.sh copies into module copies, out of
// the build module next to it (mcp-runtime.test/traefik).
module mcp-runtime.test/traefik/patch

go 1.26.0
