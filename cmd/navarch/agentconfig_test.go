package main

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"
	"sigs.k8s.io/yaml"
)

func TestProbeFlags(t *testing.T) {
	for _, tt := range []struct {
		name  string
		probe *networking.ReadinessProbe
		want  map[string]any
		err   string
	}{
		{name: "no probe", want: map[string]any{}},
		{name: "tcp with Kubernetes' default timings",
			probe: &networking.ReadinessProbe{HealthCheckMethod: &networking.ReadinessProbe_TcpSocket{TcpSocket: &networking.TCPHealthCheckConfig{Port: 9080}}},
			want: map[string]any{"probe": "tcp:127.0.0.1:9080", "probe-period": "10s", "probe-timeout": "1s", "probe-initial-delay": "0s",
				"probe-failures": 3, "probe-successes": 1}},
		{name: "a gRPC health check, by exec as Istio has it",
			probe: &networking.ReadinessProbe{PeriodSeconds: 2, FailureThreshold: 5,
				HealthCheckMethod: &networking.ReadinessProbe_Exec{Exec: &networking.ExecHealthCheckConfig{Command: []string{"navarch", "agent", "check", "grpc:127.0.0.1:9090/ratings"}}}},
			want: map[string]any{"probe": "exec:navarch agent check grpc:127.0.0.1:9090/ratings", "probe-period": "2s", "probe-timeout": "1s", "probe-initial-delay": "0s",
				"probe-failures": 5, "probe-successes": 1}},
		{name: "https with headers, Istio's example",
			probe: &networking.ReadinessProbe{InitialDelaySeconds: 5, TimeoutSeconds: 3, PeriodSeconds: 4, SuccessThreshold: 3, FailureThreshold: 3,
				HealthCheckMethod: &networking.ReadinessProbe_HttpGet{HttpGet: &networking.HTTPHealthCheckConfig{
					Path: "/foo/bar", Host: "127.0.0.1", Port: 3100, Scheme: "HTTPS",
					HttpHeaders: []*networking.HTTPHeader{{Name: "Lit-Header", Value: "Im-The-Best"}}}}},
			want: map[string]any{"probe": "https://127.0.0.1:3100/foo/bar", "probe-header": []string{"Lit-Header: Im-The-Best"},
				"probe-period": "4s", "probe-timeout": "3s", "probe-initial-delay": "5s", "probe-failures": 3, "probe-successes": 3}},
		{name: "exec",
			probe: &networking.ReadinessProbe{HealthCheckMethod: &networking.ReadinessProbe_Exec{Exec: &networking.ExecHealthCheckConfig{Command: []string{"/usr/bin/check", "--ready"}}}},
			want: map[string]any{"probe": "exec:/usr/bin/check --ready", "probe-period": "10s", "probe-timeout": "1s", "probe-initial-delay": "0s",
				"probe-failures": 3, "probe-successes": 1}},
		{name: "no port",
			probe: &networking.ReadinessProbe{HealthCheckMethod: &networking.ReadinessProbe_TcpSocket{TcpSocket: &networking.TCPHealthCheckConfig{}}},
			err:   ".tcpSocket.port: must be 1-65535"},
		{name: "an exec argument with spaces and quotes",
			probe: &networking.ReadinessProbe{HealthCheckMethod: &networking.ReadinessProbe_Exec{Exec: &networking.ExecHealthCheckConfig{Command: []string{"sh", "-c", `test "$(cat /run/state)" = 'ready'`}}}},
			want: map[string]any{"probe": `exec:sh -c 'test "$(cat /run/state)" = '\''ready'\'''`, "probe-period": "10s", "probe-timeout": "1s", "probe-initial-delay": "0s",
				"probe-failures": 3, "probe-successes": 1}},
		{name: "a scheme other than HTTP(S)",
			probe: &networking.ReadinessProbe{HealthCheckMethod: &networking.ReadinessProbe_HttpGet{HttpGet: &networking.HTTPHealthCheckConfig{Port: 80, Scheme: "FTP"}}},
			err:   ".httpGet.scheme"},
		{name: "no check", probe: &networking.ReadinessProbe{PeriodSeconds: 3}, err: "names no check"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := probeFlags(tt.probe)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("probeFlags = %v, %v; want an error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("probeFlags = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// What `navarch agent configure` writes is what `navarch agent run --config` reads:
// the group's probe with its headers and timings, the nodes, lists of repeatable
// flags; a flag on the command line wins over the file.
func TestAgentRunReadsWhatConfigureWrites(t *testing.T) {
	values, err := probeFlags(&networking.ReadinessProbe{InitialDelaySeconds: 5, TimeoutSeconds: 3, PeriodSeconds: 4, SuccessThreshold: 2, FailureThreshold: 4,
		HealthCheckMethod: &networking.ReadinessProbe_HttpGet{HttpGet: &networking.HTTPHealthCheckConfig{
			Path: "ready", Port: 3100, HttpHeaders: []*networking.HTTPHeader{{Name: "X-A", Value: "1, 2"}, {Name: "X-B", Value: "b"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	values["server"] = []string{"10.0.0.1:15012", "10.0.0.2:15012"}
	values["token-file"], values["out"], values["group"], values["address"] = "/etc/navarch/join-token", "/etc/navarch/certs", "ratings", "10.0.0.5"
	values["label"] = []string{"zone=a", "rack=r1,r2"}
	values["dns-addr"], values["dns-upstream"] = "127.0.0.1:15053", "10.0.0.53:53"
	values["status-addr"], values["probe-from-group"] = "127.0.0.1:15020", true
	b, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	inv, err := parseAgentArgs("run", []string{"--config", file, "--address", "10.0.0.9"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(inv.cfg.Servers, []string{"10.0.0.1:15012", "10.0.0.2:15012"}) || inv.cfg.TokenFile != "/etc/navarch/join-token" || inv.cfg.OutDir != "/etc/navarch/certs" {
		t.Errorf("agent config %+v", inv.cfg)
	}
	r := inv.reg
	if r.Group != "ratings" || r.Address != "10.0.0.9" || !reflect.DeepEqual(r.Labels, map[string]string{"zone": "a", "rack": "r1,r2"}) {
		t.Errorf("registration %+v", r)
	}
	if r.DNS == nil || r.DNS.Addr != "127.0.0.1:15053" || !reflect.DeepEqual(r.DNS.Upstreams, []string{"10.0.0.53:53"}) {
		t.Errorf("DNS proxy %+v", r.DNS)
	}
	if inv.statusAddr != "127.0.0.1:15020" || !r.ProbeFromGroup {
		t.Errorf("status address %q, probe from group %t", inv.statusAddr, r.ProbeFromGroup)
	}
	p := r.Probe
	if p == nil || p.Kind != "http" || p.Target != "http://127.0.0.1:3100/ready" || p.Period != 4*time.Second || p.Timeout != 3*time.Second ||
		p.InitialDelay != 5*time.Second || p.FailureThreshold != 4 || p.SuccessThreshold != 2 {
		t.Fatalf("probe %+v", p)
	}
	if got := p.Header.Values("X-A"); !reflect.DeepEqual(got, []string{"1, 2"}) || p.Header.Get("X-B") != "b" {
		t.Errorf("probe headers %v", p.Header)
	}

	// agent certs reads the same file, without the flags of run.
	certs, err := parseAgentArgs("certs", []string{"--config", file, "--once"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !certs.once || certs.reg != nil || certs.cfg.OutDir != "/etc/navarch/certs" || len(certs.cfg.Servers) != 2 {
		t.Errorf("agent certs from agent.yaml: %+v", certs)
	}
	if _, err := parseAgentArgs("certs", []string{"--group", "ratings"}, io.Discard); err == nil {
		t.Error("agent certs took --group on its command line")
	}

	// An exec probe's command reaches agent run word for word.
	words := []string{"sh", "-c", `test "$(cat /run/state)" = 'ready'`, ""}
	values, err = probeFlags(&networking.ReadinessProbe{HealthCheckMethod: &networking.ReadinessProbe_Exec{Exec: &networking.ExecHealthCheckConfig{Command: words}}})
	if err != nil {
		t.Fatal(err)
	}
	values["token-file"], values["group"], values["address"] = "/etc/navarch/join-token", "ratings", "10.0.0.5"
	if b, err = yaml.Marshal(values); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	inv, err = parseAgentArgs("run", []string{"--config", file}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if p := inv.reg.Probe; p == nil || p.Kind != "exec" || !reflect.DeepEqual(p.Command, words) {
		t.Errorf("exec probe %+v; want the command %q", p, words)
	}
}
