// Package devcluster runs a local navarch cluster: N `navarch server` processes on
// loopback, each with its own data dir, ports and log file under one directory. It is
// what `navarch dev cluster`, the benchmarks and the end-to-end tests use.
//
// The cluster's description is written to <dir>/cluster.json:
//
//	{"nodes":[{"name":"n1","pid":123,"data_dir":"…","xds":"127.0.0.1:P","http":"127.0.0.1:P","gossip":"127.0.0.1:P", …}, …]}
//
// together with the cluster secret (<dir>/secret), the admin token (<dir>/admin-token)
// and the CA key-encryption key (<dir>/ca-kek) the nodes were started with.
package devcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/internal/ports"
)

// Config says what cluster to run.
type Config struct {
	// Binary is the navarch executable to start.
	Binary string
	// Dir holds the cluster's files; created if missing.
	Dir string
	// Nodes is how many nodes to start (1 to 9).
	Nodes int
	// ExtraArgs are passed to every `navarch server`.
	ExtraArgs []string
	// ReadyTimeout bounds the wait for every node's /readyz.
	ReadyTimeout time.Duration
}

// Node is one node of the cluster, as cluster.json describes it.
type Node struct {
	Name       string   `json:"name"`
	PID        int      `json:"pid"`
	DataDir    string   `json:"data_dir"`
	XDS        string   `json:"xds"`
	XDSTLS     string   `json:"xds_tls"`
	HTTP       string   `json:"http"`
	Gossip     string   `json:"gossip"`
	EtcdClient string   `json:"etcd_client"`
	EtcdPeer   string   `json:"etcd_peer"`
	DNS        string   `json:"dns,omitempty"`
	Log        string   `json:"log"`
	Args       []string `json:"args"`
	// Binary is the executable the node runs when it is not Config.Binary (after
	// Upgrade).
	Binary string `json:"binary,omitempty"`
}

// File is the content of cluster.json.
type File struct {
	Nodes      []Node `json:"nodes"`
	SecretFile string `json:"secret_file"`
	TokenFile  string `json:"token_file"`
}

// Cluster is a running local cluster. Its methods may be called from any goroutine.
type Cluster struct {
	cfg   Config
	token string

	mu    sync.Mutex
	nodes []Node
	procs map[string]*process
}

// Start starts the cluster's nodes and waits until every one is ready. A Dir that
// already holds a cluster.json is reused: its nodes restart with their data and ports.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Nodes < 1 || cfg.Nodes > 9 {
		return nil, fmt.Errorf("dev cluster: --nodes must be 1 to 9, got %d", cfg.Nodes)
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 90 * time.Second
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, procs: map[string]*process{}}
	if _, err := readOrCreate(filepath.Join(cfg.Dir, "secret")); err != nil {
		return nil, err
	}
	var err error
	if c.token, err = readOrCreate(filepath.Join(cfg.Dir, "admin-token")); err != nil {
		return nil, err
	}
	if err := createKEK(filepath.Join(cfg.Dir, "ca-kek")); err != nil {
		return nil, err
	}
	if c.nodes, err = c.plan(); err != nil {
		return nil, err
	}
	for i := range c.nodes {
		if err := c.start(&c.nodes[i]); err != nil {
			c.Stop()
			return nil, err
		}
	}
	if err := c.WaitReady(ctx, c.Names()...); err != nil {
		c.Stop()
		return nil, err
	}
	if err := c.writeFile(); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// createKEK writes a CA key-encryption key (32 random bytes, hex) to path unless it
// exists.
func createKEK(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	b := make([]byte, 32)
	rand.Read(b)
	return os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600)
}

func readOrCreate(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return string(b), nil
	}
	b := make([]byte, 24)
	rand.Read(b)
	s := hex.EncodeToString(b)
	return s, os.WriteFile(path, []byte(s), 0o600)
}

// plan reuses cluster.json's nodes, or lays out new ones on free ports.
func (c *Cluster) plan() ([]Node, error) {
	if b, err := os.ReadFile(filepath.Join(c.cfg.Dir, "cluster.json")); err == nil {
		var f File
		if err := json.Unmarshal(b, &f); err == nil && len(f.Nodes) == c.cfg.Nodes {
			ports := &portPicker{}
			defer ports.release()
			for i := range f.Nodes {
				if f.Nodes[i].XDSTLS == "" { // planned before nodes had a TLS port
					if f.Nodes[i].XDSTLS, err = ports.pick(); err != nil {
						return nil, err
					}
				}
				f.Nodes[i].Args = c.args(f.Nodes[i], f.Nodes[0].Gossip)
			}
			return f.Nodes, nil
		}
	}
	nodes := make([]Node, c.cfg.Nodes)
	ports := &portPicker{}
	defer ports.release()
	ips := nodeIPs(c.cfg.Nodes)
	// Every node serves xDS, gRPC over TLS and DNS on one port each, on its own IP,
	// as on separate hosts: the xDS name resolves to every node for both xDS ports.
	xdsPort, tlsPort, dnsPort := ports.shared(ips), ports.shared(ips), ports.shared(ips)
	for i := range nodes {
		n := &nodes[i]
		n.Name = fmt.Sprintf("n%d", i+1)
		n.DataDir = filepath.Join(c.cfg.Dir, n.Name)
		n.Log = filepath.Join(c.cfg.Dir, n.Name+".log")
		for _, a := range []*string{&n.HTTP, &n.Gossip, &n.EtcdClient, &n.EtcdPeer} {
			addr, err := ports.pick()
			if err != nil {
				return nil, err
			}
			*a = addr
		}
		if xdsPort != 0 && tlsPort != 0 && dnsPort != 0 {
			n.XDS = net.JoinHostPort(ips[i], fmt.Sprint(xdsPort))
			n.XDSTLS = net.JoinHostPort(ips[i], fmt.Sprint(tlsPort))
			n.DNS = net.JoinHostPort(ips[i], fmt.Sprint(dnsPort))
			continue
		}
		for _, a := range []*string{&n.XDS, &n.XDSTLS, &n.DNS} {
			addr, err := ports.pick()
			if err != nil {
				return nil, err
			}
			*a = addr
		}
	}
	for i := range nodes {
		nodes[i].Args = c.args(nodes[i], nodes[0].Gossip)
	}
	return nodes, nil
}

// args are the `navarch server` arguments of node n; every node joins through the
// first one's gossip address and all form the cluster together.
func (c *Cluster) args(n Node, seed string) []string {
	args := []string{"server",
		"--name", n.Name, "--data-dir", n.DataDir,
		"--xds-addr", n.XDS, "--xds-tls-addr", n.XDSTLS, "--http-addr", n.HTTP, "--gossip-addr", n.Gossip,
		"--etcd-client-addr", n.EtcdClient, "--etcd-peer-addr", n.EtcdPeer, "--dns-addr", n.DNS,
		"--bootstrap-expect", fmt.Sprint(c.cfg.Nodes), "--join", seed,
		"--cluster-secret-file", c.SecretFile(),
		"--admin-token-file", filepath.Join(c.cfg.Dir, "admin-token"),
		"--ca-kek-file", filepath.Join(c.cfg.Dir, "ca-kek"),
		"--log-format", "json",
	}
	return append(args, c.cfg.ExtraArgs...)
}

// nodeIPs gives every node its own loopback IP (127.0.0.1, 127.0.0.2, ...) where the
// system allows binding them (Linux does), so that all nodes serve xDS on one port
// and the xDS DNS name can list them all, as on separate hosts. Elsewhere every node
// gets 127.0.0.1.
func nodeIPs(n int) []string {
	ips := make([]string, n)
	distinct := true
	if l, err := net.Listen("tcp", "127.0.0.2:0"); err == nil {
		l.Close()
	} else {
		distinct = false
	}
	for i := range ips {
		ips[i] = "127.0.0.1"
		if distinct {
			ips[i] = fmt.Sprintf("127.0.0.%d", i+1)
		}
	}
	return ips
}

// shared finds a port free (TCP and UDP) on every one of ips and holds it; 0 if it
// finds none or the IPs are not distinct (then each node needs a port of its own).
func (p *portPicker) shared(ips []string) int {
	if len(ips) > 1 && ips[0] == ips[1] {
		return 0
	}
	port, release, err := ports.Hold(ips...)
	if err != nil {
		return 0
	}
	p.held = append(p.held, release)
	return port
}

// sharedWith gives n, a node added to nodes, the xDS, TLS and DNS ports that nodes
// share on their own IPs (plan), on the next loopback IP none of them has, as one
// more host of a fleet serves what the others do: the xDS name then resolves to it
// too. It holds the ports and reports true, or false (n unchanged) when nodes do not
// share their ports or no free loopback IP has them free.
func (p *portPicker) sharedWith(nodes []Node, n *Node) bool {
	if len(nodes) < 2 {
		return false
	}
	hosts := map[string]bool{}
	var want [3]string
	for i, m := range nodes {
		host, _, _ := net.SplitHostPort(m.XDS)
		var got [3]string
		for j, a := range []string{m.XDS, m.XDSTLS, m.DNS} {
			h, port, _ := net.SplitHostPort(a)
			if h != host {
				return false
			}
			got[j] = port
		}
		if i == 0 {
			want = got
		}
		if got != want || hosts[host] {
			return false // nodes have ports of their own, or share an IP
		}
		hosts[host] = true
	}
	for i := len(nodes) + 1; i < 255; i++ {
		ip := fmt.Sprintf("127.0.0.%d", i)
		if hosts[ip] {
			continue
		}
		var held []func()
		for _, port := range want {
			num, _ := strconv.Atoi(port)
			release, err := ports.HoldPort(num, ip)
			if err != nil {
				break
			}
			held = append(held, release)
		}
		if len(held) < len(want) { // taken on this IP: try the next
			for _, release := range held {
				release()
			}
			continue
		}
		p.held = append(p.held, held...)
		n.XDS, n.XDSTLS, n.DNS = net.JoinHostPort(ip, want[0]), net.JoinHostPort(ip, want[1]), net.JoinHostPort(ip, want[2])
		return true
	}
	return false
}

// portPicker hands out loopback addresses whose TCP and UDP ports are free (gossip
// uses both), outside the kernel's ephemeral range so that no outgoing connection
// takes one before its node binds it (a restarted node binds its ports again), and
// holds each until release.
type portPicker struct {
	held []func()
}

func (p *portPicker) pick() (string, error) {
	port, release, err := ports.Hold()
	if err != nil {
		return "", err
	}
	p.held = append(p.held, release)
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

func (p *portPicker) release() {
	for _, release := range p.held {
		release()
	}
	p.held = nil
}

// start runs node n's process, with extra arguments after its own for this start.
func (c *Cluster) start(n *Node, extra ...string) error {
	logf, err := os.OpenFile(n.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	bin := c.cfg.Binary
	if n.Binary != "" {
		bin = n.Binary
	}
	cmd := exec.Command(bin, append(slices.Clip(n.Args), extra...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	c.mu.Lock()
	nodes := len(c.nodes)
	c.mu.Unlock()
	cmd.Env = nodeEnv(os.Environ(), runtime.NumCPU(), nodes)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", n.Name, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	c.mu.Lock()
	n.PID = cmd.Process.Pid
	c.procs[n.Name] = p
	c.mu.Unlock()
	return nil
}

// process is a node's running process; exited is closed once it has exited and
// been reaped, and with it every socket it held is closed.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// nodeEnv is the environment of a node of a cluster of n nodes on a host of cpus
// cores: env, with GOMAXPROCS set to the node's share of the cores (at least one)
// unless env sets it. The nodes share the host, and each Go runtime sizing itself to
// every core has idle threads spin looking for work the other nodes' threads
// should run instead: on 2 cores, three nodes with one each spend ~18% less CPU on
// a push to 10,000 proxies, which reaches them ~13% sooner (bench/RESULTS.md). One
// node to a host, as deployed, uses all of its cores.
func nodeEnv(env []string, cpus, n int) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "GOMAXPROCS=") {
			return env
		}
	}
	return append(slices.Clip(env), "GOMAXPROCS="+strconv.Itoa(max(1, cpus/max(1, n))))
}

// Add starts one more node that joins the running cluster (it is added to etcd as a
// learner and promoted), and waits until it is ready.
func (c *Cluster) Add(ctx context.Context) (Node, error) {
	c.mu.Lock()
	n := Node{Name: fmt.Sprintf("n%d", len(c.nodes)+1)}
	seed := c.nodes[0].Gossip
	c.mu.Unlock()
	n.DataDir = filepath.Join(c.cfg.Dir, n.Name)
	n.Log = filepath.Join(c.cfg.Dir, n.Name+".log")
	ports := &portPicker{}
	addrs := []*string{&n.HTTP, &n.Gossip, &n.EtcdClient, &n.EtcdPeer}
	c.mu.Lock()
	shared := ports.sharedWith(c.nodes, &n)
	c.mu.Unlock()
	if !shared {
		addrs = append(addrs, &n.XDS, &n.XDSTLS, &n.DNS)
	}
	for _, a := range addrs {
		addr, err := ports.pick()
		if err != nil {
			ports.release()
			return Node{}, err
		}
		*a = addr
	}
	ports.release()
	args := c.args(n, seed)
	for i := range args {
		if args[i] == "--bootstrap-expect" {
			args = append(args[:i:i], args[i+2:]...)
			break
		}
	}
	n.Args = args
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	if err := c.start(&c.nodes[len(c.nodes)-1]); err != nil {
		return Node{}, err
	}
	if err := c.WaitReady(ctx, n.Name); err != nil {
		return Node{}, err
	}
	return n, c.writeFile()
}

// Names returns the nodes' names.
func (c *Cluster) Names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.Name)
	}
	return out
}

// Nodes returns the nodes as they are now.
func (c *Cluster) Nodes() []Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Node(nil), c.nodes...)
}

// Node returns the node named name.
func (c *Cluster) Node(name string) (Node, bool) {
	for _, n := range c.Nodes() {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Token returns the admin token the nodes require.
func (c *Cluster) Token() string { return c.token }

// SecretFile returns the path of the cluster secret file the nodes are given.
func (c *Cluster) SecretFile() string { return filepath.Join(c.cfg.Dir, "secret") }

// TokenFile returns the path of the admin token.
func (c *Cluster) TokenFile() string { return filepath.Join(c.cfg.Dir, "admin-token") }

// WaitReady waits until every named node answers /readyz with 200.
func (c *Cluster) WaitReady(ctx context.Context, names ...string) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ReadyTimeout)
	defer cancel()
	for _, name := range names {
		n, ok := c.Node(name)
		if !ok {
			return fmt.Errorf("no node %s", name)
		}
		var last string
		for {
			if last = ready(ctx, n.HTTP); last == "" {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("node %s not ready: %s (log: %s)", name, last, n.Log)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// ready returns "" when the node at addr is ready, else why not.
func ready(ctx context.Context, addr string) string {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return ""
	}
	var b [512]byte
	k, _ := resp.Body.Read(b[:])
	return string(b[:k])
}

// Kill stops a node with SIGKILL, as a crash would, and waits until it has exited.
func (c *Cluster) Kill(name string) error {
	return c.signal(name, syscall.SIGKILL)
}

// Terminate stops a node with SIGTERM, as an operator or a service manager would
// (it stays a member of the cluster unless it runs with --leave-on-terminate), and
// waits until it has exited.
func (c *Cluster) Terminate(name string) error {
	return c.signal(name, syscall.SIGTERM)
}

// signal sends sig to a node's process and waits until it has exited.
func (c *Cluster) signal(name string, sig syscall.Signal) error {
	c.mu.Lock()
	p := c.procs[name]
	delete(c.procs, name)
	c.mu.Unlock()
	if p == nil {
		return fmt.Errorf("node %s is not running", name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return err
	}
	// Until the process is gone its listeners hold the node's ports, and a Restart
	// in the meantime would fail to bind them (on a loaded host that can take a
	// while).
	select {
	case <-p.exited:
		return nil
	case <-time.After(30 * time.Second):
		p.cmd.Process.Signal(syscall.SIGKILL)
		return fmt.Errorf("node %s (pid %d) has not exited 30 s after %v", name, p.cmd.Process.Pid, sig)
	}
}

// Restart starts a stopped node again with its data dir and ports, and extra
// arguments for this start (--force-new-cluster, say).
func (c *Cluster) Restart(name string, extra ...string) error {
	c.mu.Lock()
	var n *Node
	for i := range c.nodes {
		if c.nodes[i].Name == name {
			n = &c.nodes[i]
		}
	}
	_, running := c.procs[name]
	c.mu.Unlock()
	if n == nil {
		return fmt.Errorf("no node %s", name)
	}
	if running {
		return fmt.Errorf("node %s is running", name)
	}
	if err := c.start(n, extra...); err != nil {
		return err
	}
	return c.writeFile()
}

// Upgrade starts a stopped node again, as Restart does, running binary from now on
// (a new build of navarch, in a rolling upgrade).
func (c *Cluster) Upgrade(name, binary string) error {
	c.mu.Lock()
	for i := range c.nodes {
		if c.nodes[i].Name == name {
			c.nodes[i].Binary = binary
		}
	}
	c.mu.Unlock()
	return c.Restart(name)
}

// Running reports whether the node's process was started by this cluster and not killed.
func (c *Cluster) Running(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.procs[name]
	return ok
}

// Stop stops every node (SIGTERM, then SIGKILL after 10 s) and waits for them.
func (c *Cluster) Stop() {
	c.mu.Lock()
	procs := c.procs
	c.procs = map[string]*process{}
	c.mu.Unlock()
	// The etcd leader goes last: stopped while its followers are up, a leader hands
	// leadership over first, and when they are stopping at the same moment that
	// waits out etcd's request timeout (about 7 s). Alone, it stops at once.
	leader := c.leader(procs)
	stop := func(only func(name string) bool) {
		var wg sync.WaitGroup
		for name, p := range procs {
			if !only(name) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-p.exited:
				case <-time.After(10 * time.Second):
					p.cmd.Process.Signal(syscall.SIGKILL)
					<-p.exited
				}
			}()
		}
		wg.Wait()
	}
	stop(func(name string) bool { return name != leader })
	stop(func(name string) bool { return name == leader })
}

// leader returns the name of the etcd leader as the first running node to answer
// sees it; "" when none answers within a second.
func (c *Cluster) leader(procs map[string]*process) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, n := range c.Nodes() {
		if procs[n.Name] == nil {
			continue
		}
		members, err := client.New(n.HTTP, c.token).Members(ctx)
		if err != nil {
			continue
		}
		for _, m := range members {
			if m.Etcd == "leader" {
				return m.Name
			}
		}
	}
	return ""
}

func (c *Cluster) writeFile() error {
	f := File{Nodes: c.Nodes(), SecretFile: c.SecretFile(), TokenFile: c.TokenFile()}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(c.cfg.Dir, "cluster.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(c.cfg.Dir, "cluster.json"))
}
