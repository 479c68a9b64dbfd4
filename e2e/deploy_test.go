package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/internal/ports"
)

// TestExampleDeployment runs deploy/: the three node configurations of deploy/config
// with the command of deploy/systemd/navarch.service, and the VM agent of
// navarch-agent.service, as written but moved onto this host: 10.0.0.N becomes
// 127.0.0.N, each port a free one, /etc/navarch and /var/lib/navarch directories of
// the test. The nodes must form one cluster, serve from one node what another took,
// and take back a node killed and restarted with its configuration; the agent must
// get its workload's certificate and register it in its WorkloadGroup.
func TestExampleDeployment(t *testing.T) {
	if l, err := net.Listen("tcp", "127.0.0.2:0"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the example deployment needs loopback addresses 127.0.0.1-3: %v", err)
		}
		t.Skipf("loopback address 127.0.0.2 unusable here: %v", err)
	} else {
		l.Close()
	}
	dir := t.TempDir()
	etc := filepath.Join(dir, "etc")
	if err := os.Mkdir(etc, 0o700); err != nil {
		t.Fatal(err)
	}
	configs := make([]string, 3)
	hostPort := regexp.MustCompile(`10\.0\.0\.([1-3]):([0-9]+)`)
	freePorts := map[string]int{}
	for i := range configs {
		b, err := os.ReadFile(filepath.Join("..", "deploy", "config", fmt.Sprintf("n%d.yaml", i+1)))
		if err != nil {
			t.Fatal(err)
		}
		configs[i] = string(b)
		for _, m := range hostPort.FindAllStringSubmatch(configs[i], -1) {
			if _, ok := freePorts[m[2]]; !ok {
				freePorts[m[2]] = sharedFreePort(t, "127.0.0.1", "127.0.0.2", "127.0.0.3")
			}
		}
	}
	if len(freePorts) < 5 {
		t.Fatalf("the example configurations name %d ports; want gossip, etcd, xDS, API and DNS ports", len(freePorts))
	}
	here := func(s string) string {
		s = hostPort.ReplaceAllStringFunc(s, func(s string) string {
			m := hostPort.FindStringSubmatch(s)
			return fmt.Sprintf("127.0.0.%s:%d", m[1], freePorts[m[2]])
		})
		return strings.ReplaceAll(s, "/etc/navarch/", etc+"/")
	}
	for i := range configs {
		c := strings.ReplaceAll(here(configs[i]), "/var/lib/navarch", filepath.Join(dir, fmt.Sprintf("n%d", i+1)))
		configs[i] = writeFile(t, dir, fmt.Sprintf("n%d.yaml", i+1), c)
	}
	serverCmd := execStart(t, "navarch.service")
	if !slices.Contains(serverCmd, "/etc/navarch/navarch.yaml") {
		t.Fatalf("navarch.service runs %v, not with /etc/navarch/navarch.yaml", serverCmd)
	}
	for _, f := range []string{"secret", "admin-token", "ca-kek"} {
		b := make([]byte, 32)
		rand.Read(b)
		// As xxd -p writes them (deploy/README.md).
		if err := os.WriteFile(filepath.Join(etc, f), []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caPEM, certPEM, keyPEM := serverCertificate(t, net.ParseIP("127.0.0.1"), net.ParseIP("127.0.0.2"), net.ParseIP("127.0.0.3"))
	caFile := writeFile(t, dir, "api-ca.pem", string(caPEM))
	writeFile(t, etc, "api-cert.pem", string(certPEM))
	writeFile(t, etc, "api-key.pem", string(keyPEM))

	nodes := make([]*exec.Cmd, 3)
	logs := make([]*bytes.Buffer, 3)
	start := func(i int) {
		logs[i] = &bytes.Buffer{}
		args := slices.Clone(serverCmd[1:])
		args[slices.Index(args, "/etc/navarch/navarch.yaml")] = configs[i]
		nodes[i] = exec.Command(navarchBin, args...)
		nodes[i].Stdout, nodes[i].Stderr = logs[i], logs[i]
		if err := nodes[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	kill := func(i int) {
		if nodes[i].ProcessState == nil {
			nodes[i].Process.Signal(syscall.SIGKILL)
			nodes[i].Wait()
		}
	}
	for i := range nodes {
		start(i)
	}
	t.Cleanup(func() {
		for i := range nodes {
			kill(i)
			if t.Failed() {
				t.Logf("n%d's log:\n%s", i+1, logs[i].String())
			}
		}
	})
	api := func(i int) string { return fmt.Sprintf("https://127.0.0.%d:%d", i+1, freePorts["15014"]) }
	run := func(i int, args ...string) cliResult {
		return cli(t, api(i), append(args, "--ca-file", caFile, "--token-file", filepath.Join(etc, "admin-token"))...)
	}
	formed := func(i int) error {
		res := run(i, "members", "-o", "json")
		if res.Code != 0 {
			return fmt.Errorf("navarch members: %s", res.Stderr)
		}
		var ms []client.MemberInfo
		if err := json.Unmarshal([]byte(res.Stdout), &ms); err != nil {
			return err
		}
		var seen []string
		for _, m := range ms {
			if m.Gossip == "alive" && (m.Etcd == "leader" || m.Etcd == "follower") {
				seen = append(seen, m.Name)
			}
		}
		sort.Strings(seen)
		if strings.Join(seen, ",") != "n1,n2,n3" {
			return fmt.Errorf("alive voting members %v of %s", seen, res.Stdout)
		}
		return nil
	}
	// Each node answers once it has started its part: ask all three.
	eventually(t, 60*time.Second, "the three example nodes form a cluster", func() error { return errors.Join(formed(0), formed(1), formed(2)) })

	vs := writeFile(t, dir, "vs.yaml", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]
`)
	if res := run(0, "apply", "-f", vs); res.Code != 0 {
		t.Fatalf("apply on n1: %s", res.Stderr)
	}
	eventually(t, 10*time.Second, "n3 serves what n1 took", func() error {
		if res := run(2, "get", "vs", "reviews"); res.Code != 0 || !strings.Contains(res.Stdout, "reviews") {
			return fmt.Errorf("get on n3: %q %q", res.Stdout, res.Stderr)
		}
		return nil
	})

	// Scheduled backups: each node saves its own into its backup dir, at once when
	// it has none, and each passes navarch snapshot status.
	for i := range nodes {
		backups := filepath.Join(dir, fmt.Sprintf("n%d-backups", i+1))
		eventually(t, 30*time.Second, fmt.Sprintf("a backup of n%d", i+1), func() error {
			files, _ := filepath.Glob(filepath.Join(backups, fmt.Sprintf("navarch-n%d-*.db", i+1)))
			if len(files) == 0 {
				return fmt.Errorf("none in %s", backups)
			}
			if res := cli(t, "", "snapshot", "status", files[0]); res.Code != 0 || !strings.Contains(res.Stdout, "revision") {
				return fmt.Errorf("snapshot status %s: %q %q", files[0], res.Stdout, res.Stderr)
			}
			return nil
		})
	}

	// The VM agent's unit, with what `navarch agent configure` writes for its group.
	group := writeFile(t, dir, "group.yaml", ratingsGroupYAML)
	if res := run(0, "apply", "-f", group); res.Code != 0 {
		t.Fatalf("apply on n1: %s", res.Stderr)
	}
	if res := run(1, "agent", "configure", "--workload-group", "bookinfo/ratings", "--out", etc, "--dir", etc); res.Code != 0 {
		t.Fatalf("agent configure on n2: %s", res.Stderr)
	}
	agentCmd := execStart(t, "navarch-agent.service")
	for i := range agentCmd {
		agentCmd[i] = here(agentCmd[i])
	}
	agent := startAgent(t, agentCmd[1:])
	eventually(t, 30*time.Second, "the agent's certificate files", func() error {
		check := exec.Command(navarchBin, "agent", "certs", "--identity-check", "--out", filepath.Join(etc, "certs"))
		if out, err := check.CombinedOutput(); err != nil || !strings.Contains(string(out), ratingsSPIFFE) {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	eventually(t, 30*time.Second, "the VM registered in its group", func() error {
		res := run(2, "registry", "-o", "json")
		var reg client.RegistryListing
		if err := json.Unmarshal([]byte(res.Stdout), &reg); err != nil {
			return fmt.Errorf("%v: %s", err, res.Stderr)
		}
		for _, e := range reg.Unselected {
			if e.Name == "ratings-10.0.0.21" && e.Source == "vm" && e.ServiceAccount == "ratings-sa" {
				return nil
			}
		}
		return fmt.Errorf("no ratings-10.0.0.21 among %+v\nagent log:\n%s", reg.Unselected, agent.logged())
	})
	agent.cmd.Process.Kill()

	kill(1)
	start(1)
	eventually(t, 60*time.Second, "n2, killed and restarted with its configuration, is back", func() error {
		if err := formed(1); err != nil {
			return err
		}
		if res := run(1, "get", "vs", "reviews"); res.Code != 0 || !strings.Contains(res.Stdout, "reviews") {
			return fmt.Errorf("get on n2: %q %q", res.Stdout, res.Stderr)
		}
		return nil
	})
}

// execStart returns the command of a unit in deploy/systemd, its words as the shell
// would split them (the units quote nothing).
func execStart(t *testing.T, unit string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "deploy", "systemd", unit))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		if cmd, ok := strings.CutPrefix(line, "ExecStart="); ok {
			words := strings.Fields(cmd)
			if words[0] != "/usr/local/bin/navarch" {
				t.Fatalf("%s runs %s, not /usr/local/bin/navarch", unit, words[0])
			}
			return words
		}
	}
	t.Fatalf("%s has no ExecStart", unit)
	return nil
}

// sharedFreePort returns a port free on every one of ips (TCP and UDP), below the
// kernel's ephemeral range, where no outgoing connection takes it before a node
// binds it (internal/ports).
func sharedFreePort(t *testing.T, ips ...string) int {
	t.Helper()
	port, release, err := ports.Hold(ips...)
	if err != nil {
		t.Fatal(err)
	}
	release()
	return port
}
