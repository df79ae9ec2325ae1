// Replaces providers/dns/zz_gen_dns_providers.go in a copy of lego v5.4.1 (from the module proxy), made by
// ../../traefik.sh: that file imports every DNS provider, and the SDKs of seven of them (Akamai, Huawei
// Cloud, OCI, Sakura Cloud, UCloud, Yandex Cloud at the versions lego pins) are not on the Go module proxy
// reachable here. The test cluster issues no ACME certificates: this Traefik has no DNS-01 providers.

package dns

import (
	"fmt"

	"github.com/go-acme/lego/v5/challenge"
)

// NewDNSChallengeProviderByName fails for every name: no DNS-01 provider is built in.
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	return nil, fmt.Errorf("DNS provider %q: this Traefik build (mcp-runtime test cluster) has no ACME DNS-01 providers", name)
}
