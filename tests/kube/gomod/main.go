// Command kube is one multi-call binary for the test cluster (like hyperkube or k3s): etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy and kubectl.
//
// Why one binary: the components share most of their packages, and on a 2-core machine the link
// step of each separate binary costs about as much as compiling a large package; one link and one
// file on disk instead of seven. Each entry point is the upstream command's own constructor, so the
// flags and behaviour are those of the upstream binaries.
//
// Dispatch: by the name it runs as (a symlink named kube-apiserver) or by the first argument
// (`kube kube-apiserver --etcd-servers=...`).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	_ "time/tzdata" // CronJob time zones, as in cmd/kube-apiserver and cmd/kube-controller-manager

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/etcdmain"
	_ "k8s.io/client-go/plugin/pkg/client/auth" // kubectl's auth plugins, as in cmd/kubectl
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as in every cmd/*
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as in every cmd/*
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as in every cmd/*
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

// cobraCommands are the components whose upstream main is `os.Exit(cli.Run(New...Command()))`.
var cobraCommands = map[string]func() *cobra.Command{
	"kube-apiserver":          apiserver.NewAPIServerCommand,
	"kube-controller-manager": controllermanager.NewControllerManagerCommand,
	"kube-scheduler":          func() *cobra.Command { return scheduler.NewSchedulerCommand() },
	"kube-proxy":              proxy.NewProxyCommand,
	"kubelet":                 func() *cobra.Command { return kubelet.NewKubeletCommand(context.Background()) },
}

func names() []string {
	all := []string{"etcd", "kubectl"}
	for name := range cobraCommands {
		all = append(all, name)
	}
	sort.Strings(all)
	return all
}

func main() {
	name := filepath.Base(os.Args[0])
	if !known(name) {
		if len(os.Args) < 2 || !known(os.Args[1]) {
			fmt.Fprintf(os.Stderr, "usage: %s COMMAND [flags] (or run it through a symlink named COMMAND)\ncommands: %v\n", name, names())
			os.Exit(2)
		}
		// Drop our own name so each command sees argv exactly as its upstream binary would.
		name = os.Args[1]
		os.Args = append([]string{name}, os.Args[2:]...)
	}
	switch name {
	case "etcd":
		etcdmain.Main(os.Args)
	case "kubectl":
		// As cmd/kubectl/kubectl.go.
		logs.GlogSetter(kubectlcmd.GetLogVerbosity(os.Args)) //nolint:errcheck
		if err := cli.RunNoErrOutput(kubectlcmd.NewDefaultKubectlCommand()); err != nil {
			kubectlutil.CheckErr(err)
		}
	default:
		os.Exit(cli.Run(cobraCommands[name]()))
	}
}

func known(name string) bool {
	_, ok := cobraCommands[name]
	return ok || name == "etcd" || name == "kubectl"
}
