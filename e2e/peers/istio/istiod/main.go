// Command istiod-xds serves the xDS Istio's own istiod generates for a set of
// configuration documents: istiod's discovery server as Istio's tests run it in
// process (pilot/test/xds, with its in-memory config store and ServiceEntry
// registry), on a real TCP listener, plaintext. navarch's parity tests point the
// same grpc-go xDS clients at it and at navarch, with the same YAML, and compare
// what the traffic does (`make peers` builds it into .peers/bin/istiod-xds).
//
// With --kube it also follows a Kubernetes cluster of the objects given (its fake
// client, as Istio's tests run istiod's Kubernetes registry), for the parity of
// navarch's Kubernetes adapter. Istio's mesh ConfigMap (istio of istio-system)
// among the configuration documents is istiod's mesh config, merged onto Istio's
// defaults as istiod reads it, and its meshNetworks istiod's networks (their
// gateways by address).
//
// It prints "listening on <addr>" once serving, and runs until SIGTERM or SIGINT.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/config/mesh/meshwatcher"
	"istio.io/istio/pkg/test"
	kubeyaml "k8s.io/apimachinery/pkg/util/yaml"
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
	meshConfig, networks, err := meshConfigOf(string(data))
	if err != nil {
		fmt.Fprintln(os.Stderr, "istiod-xds: the mesh ConfigMap:", err)
		os.Exit(2)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	err = test.Wrap(func(t test.Failer) {
		opts := xds.FakeOptions{
			Configs:                configs,
			MeshConfig:             meshConfig,
			KubernetesObjectString: kubeObjects,
			ListenerBuilder: func() (net.Listener, error) {
				return net.Listen("tcp", *addr)
			},
		}
		if networks != nil {
			opts.NetworksWatcher = meshwatcher.NewFixedNetworksWatcher(networks)
		}
		s := xds.NewFakeDiscoveryServer(t, opts)
		fmt.Printf("listening on %s\n", s.Listener.Addr())
		<-stop
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "istiod-xds:", err)
		os.Exit(1)
	}
}

// meshConfigOf returns the mesh config of the ConfigMap istio of istio-system among
// the documents, nil (Istio's defaults) when there is none, and its meshNetworks
// (nil when it has none).
func meshConfigOf(data string) (*meshconfig.MeshConfig, *meshconfig.MeshNetworks, error) {
	dec := kubeyaml.NewYAMLOrJSONDecoder(strings.NewReader(data), 512*1024)
	for {
		var obj struct {
			Kind     string
			Metadata struct{ Name, Namespace string }
			Data     map[string]string
		}
		err := dec.Decode(&obj)
		if err == io.EOF {
			return nil, nil, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if obj.Kind == "ConfigMap" && obj.Metadata.Name == "istio" && obj.Metadata.Namespace == "istio-system" {
			m, err := mesh.ApplyMeshConfigDefaults(obj.Data["mesh"])
			if err != nil {
				return nil, nil, err
			}
			var networks *meshconfig.MeshNetworks
			if text := obj.Data["meshNetworks"]; text != "" {
				if networks, err = mesh.ParseMeshNetworks(text); err != nil {
					return nil, nil, fmt.Errorf("meshNetworks: %w", err)
				}
			}
			return m, networks, nil
		}
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
