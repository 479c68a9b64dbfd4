// Command istiod-xds serves the xDS Istio's own istiod generates for a set of
// configuration documents: istiod's discovery server as Istio's tests run it in
// process (pilot/test/xds, with its in-memory config store and ServiceEntry
// registry), on a real TCP listener, plaintext. navarch's parity tests point the
// same grpc-go xDS clients at it and at navarch, with the same YAML, and compare
// what the traffic does (`make peers` builds it into .peers/bin/istiod-xds).
//
// With --kube it also follows a Kubernetes cluster of the objects given (its fake
// client, as Istio's tests run istiod's Kubernetes registry), for the parity of
// navarch's Kubernetes adapter.
//
// It prints "listening on <addr>" once serving, and runs until SIGTERM or SIGINT.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/test"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to serve xDS on")
	configFile := flag.String("config", "", "YAML documents (Istio configuration) to serve")
	kubeFile := flag.String("kube", "", "YAML documents (Kubernetes objects: Services, pods, EndpointSlices) of the cluster istiod follows, optional")
	flag.Parse()
	var kubeObjects string
	if *kubeFile != "" {
		b, err := os.ReadFile(*kubeFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "istiod-xds:", err)
			os.Exit(2)
		}
		kubeObjects = string(b)
	}
	data, err := os.ReadFile(*configFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "istiod-xds:", err)
		os.Exit(2)
	}
	configs, err := parse(string(data))
	if err != nil {
		fmt.Fprintln(os.Stderr, "istiod-xds:", err)
		os.Exit(2)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	err = test.Wrap(func(t test.Failer) {
		s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
			Configs:                configs,
			KubernetesObjectString: kubeObjects,
			ListenerBuilder: func() (net.Listener, error) {
				return net.Listen("tcp", *addr)
			},
		})
		fmt.Printf("listening on %s\n", s.Listener.Addr())
		<-stop
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "istiod-xds:", err)
		os.Exit(1)
	}
}

// parse reads the documents as istiod's Kubernetes config store would hold them:
// namespace "default" where none is given, and the cluster's domain, which is
// what short host names ("reviews") are completed with. (The test harness's own
// ConfigString leaves the domain empty, so "reviews" would become
// "reviews.default.svc." and match nothing.)
func parse(data string) ([]config.Config, error) {
	configs, _, err := crd.ParseInputs(data)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for i := range configs {
		c := &configs[i]
		if c.Namespace == "" {
			c.Namespace = "default"
		}
		c.Domain = "cluster.local"
		if c.CreationTimestamp.IsZero() {
			c.CreationTimestamp = now
		}
	}
	return configs, nil
}
