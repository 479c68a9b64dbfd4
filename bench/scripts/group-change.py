#!/usr/bin/env python3
"""How fast a changed WorkloadGroup reaches a running VM: starts a dev node (ports
26010-26014) and one agent in /tmp/wgm, applies 20 changes of the group (a template
label and the probe at once) and times each until `navarch registry` shows the
label and the agent logs the new probe. Usage: group-change.py bin/navarch"""
import json, subprocess, time, os, re, statistics, sys
nv = sys.argv[1]
env = dict(os.environ, NAVARCH_SERVER="http://127.0.0.1:26014")
d = "/tmp/wgm"
os.makedirs(d, exist_ok=True)
srv = subprocess.Popen([nv, "server", "--dev", "--xds-addr", "127.0.0.1:26010", "--http-addr", "127.0.0.1:26014", "--xds-tls-addr", "127.0.0.1:26012"], stdout=open(d+"/server.log","w"), stderr=subprocess.STDOUT)
time.sleep(2)
group = """apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: ratings, namespace: vms}
spec:
  template: {serviceAccount: ratings, labels: {version: v1, tier: %s}, ports: {grpc: 9080}}
  probe: {tcpSocket: {port: %d}, periodSeconds: 1}
"""
def apply(tier, port):
    open(d+"/g.yaml","w").write(group % (tier, port))
    subprocess.run([nv, "apply", "-f", d+"/g.yaml"], env=env, check=True, capture_output=True)
apply("t0", 26014)
subprocess.run([nv, "agent", "configure", "--workload-group", "vms/ratings", "--out", d+"/vm", "--dir", d+"/vm"], env=env, check=True, capture_output=True)
log = open(d+"/agent.log","w")
ag = subprocess.Popen([nv, "agent", "run", "--config", d+"/vm/agent.yaml", "--address", "127.0.0.1"], stdout=log, stderr=subprocess.STDOUT)
def tier():
    out = subprocess.run([nv, "registry", "-o", "json"], env=env, capture_output=True, text=True).stdout
    for s in json.loads(out).get("unselected") or []:
        return s.get("labels", {}).get("tier")
    return None
while tier() != "t0": time.sleep(0.05)
lab, prb = [], []
for i in range(1, 21):
    port = 26100 + i
    t0 = time.time()
    apply("t%d" % i, port)
    while tier() != "t%d" % i: time.sleep(0.005)
    lab.append(time.time() - t0)
    while "probe=tcp:127.0.0.1:%d" % port not in open(d+"/agent.log").read(): time.sleep(0.005)
    prb.append(time.time() - t0)
ag.kill(); srv.kill()
q = lambda xs, p: sorted(xs)[min(len(xs)-1, int(p*len(xs)))]
print("group change -> entry rewritten (as navarch registry shows it): p50 %.0f ms, max %.0f ms" % (1000*q(lab,.5), 1000*max(lab)))
print("group change -> agent running the new probe (its log):         p50 %.0f ms, max %.0f ms" % (1000*q(prb,.5), 1000*max(prb)))
