#!/usr/bin/env python3
"""Checks of deploy/ that promtool and kubernetes-validate cannot do, run by .ci/prometheus.sh.

  check_deploy.py static SCRAPE_OUT
      Kubernetes manifests (ports, probes, listen addresses, scrape annotations), the
      ServiceMonitor (a custom resource kubernetes-validate has no schema for) against the
      Services and pods it must select, deploy/prometheus/scrape.yaml's pod relabeling simulated
      on the manifests' pods, and the Grafana dashboard's structure. Writes SCRAPE_OUT: the scrape
      config without its kubernetes_sd jobs, for `promtool check config` (Debian's Prometheus is
      built without Kubernetes discovery).
  check_deploy.py openmetrics FILE CONTENT_TYPE
      A scrape of /metrics in OpenMetrics: strict parse (prometheus_client's OpenMetrics parser),
      no duplicate series, every family that deploy/ reads present with its type.
  check_deploy.py configs HEALTHSCORE_BIN
      `healthscore config check` on the config each manifest mounts, with its container's
      HEALTHSCORE_* variables: the keys the manifests set exist in the binary.
  check_deploy.py prometheus URL INSTANCE
      Against a Prometheus scraping healthscore: the rules' alerts that the CI state must make
      pending are pending, and every dashboard query runs and returns data.

Needs PyYAML (and prometheus_client for `openmetrics`).
"""

import json
import re
import sys
import time
import tomllib
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
PROM = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "healthscore.json"

HTTP_PORT = 8080
# The families healthscore exports on /metrics, with their types as Prometheus sees them.
FAMILIES = {
    "healthscore_system_score": "gauge",
    "healthscore_system_status": "gauge",
    "healthscore_subsystem_score": "gauge",
    "healthscore_subsystem_status": "gauge",
    "healthscore_subsystem_available": "gauge",
    "healthscore_issue": "gauge",
    "healthscore_source_stale": "gauge",
    "healthscore_revision": "gauge",
    "healthscore_pushes": "counter",
    "healthscore_watch_streams": "gauge",
    "healthscore_probe_failing": "gauge",
}
# Families exported only when a section is configured ([fleet]): rules may read them.
CONFIGURED_FAMILIES = {
    "healthscore_fleet_peers": "gauge",
    "healthscore_fleet_failing": "gauge",
    "healthscore_fleet_held": "gauge",
}
SUBSYSTEMS = ["datasources", "caches", "watchers", "schedulers", "executors", "webServer",
              "runtime", "performance", "host"]

# Field names of monitoring.coreos.com/v1 ServiceMonitor (prometheus-operator's CRD).
SM_SPEC_KEYS = {
    "attachMetadata", "bodySizeLimit", "convertClassicHistogramsToNHCB", "endpoints",
    "fallbackScrapeProtocol", "jobLabel", "keepDroppedTargets", "labelLimit",
    "labelNameLengthLimit", "labelValueLengthLimit", "namespaceSelector",
    "nativeHistogramBucketLimit", "nativeHistogramMinBucketFactor", "podTargetLabels",
    "sampleLimit", "scrapeClass", "scrapeClassicHistograms", "scrapeNativeHistograms",
    "scrapeProtocols", "selector", "selectorMechanism", "serviceDiscoveryRole", "targetLabels",
    "targetLimit",
}
SM_ENDPOINT_KEYS = {
    "authorization", "basicAuth", "bearerTokenFile", "bearerTokenSecret", "enableHttp2",
    "filterRunning", "followRedirects", "honorLabels", "honorTimestamps", "interval",
    "metricRelabelings", "noProxy", "oauth2", "params", "path", "port", "proxyConnectHeader",
    "proxyFromEnvironment", "proxyUrl", "relabelings", "scheme", "scrapeTimeout", "targetPort",
    "tlsConfig", "trackTimestampsStaleness",
}
SM_RELABEL_KEYS = {"action", "modulus", "regex", "replacement", "separator", "sourceLabels",
                   "targetLabel"}
DURATION = re.compile(r"^(0|(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?)$")

errors = []


def fail(msg):
    errors.append(msg)
    print(f"FAIL {msg}")


def ok(msg):
    print(f"ok   {msg}")


def finish():
    if errors:
        print(f"{len(errors)} check(s) failed")
        sys.exit(1)


def load_docs(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# ---------------------------------------------------------------------------------------------
# Kubernetes manifests


def workloads():
    """(file, workload doc, ConfigMaps of that file, Services of that file)"""
    out = []
    for name in ("sidecar.yaml", "daemonset.yaml"):
        docs = load_docs(K8S / name)
        cms = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
        svcs = [d for d in docs if d["kind"] == "Service"]
        for d in docs:
            if d["kind"] in ("Deployment", "DaemonSet", "StatefulSet"):
                out.append((name, d, cms, svcs))
    return out


def healthscore_container(pod_spec):
    for c in pod_spec["containers"]:
        if "healthscore" in c.get("image", "") or c["name"] == "healthscore":
            return c
    return None


def http_listen(container, pod_spec, cms):
    """The http.listen the container gets: env first, then the mounted config file."""
    for e in container.get("env", []):
        if e["name"] == "HEALTHSCORE_HTTP__LISTEN":
            return e.get("value"), "env HEALTHSCORE_HTTP__LISTEN"
    mounts = {m["name"] for m in container.get("volumeMounts", [])}
    for v in pod_spec.get("volumes", []):
        if v["name"] in mounts and "configMap" in v:
            cm = cms.get(v["configMap"]["name"])
            for key, text in (cm or {}).get("data", {}).items():
                if key.endswith(".toml"):
                    listen = tomllib.loads(text).get("http", {}).get("listen")
                    if listen:
                        return listen, f"ConfigMap {cm['metadata']['name']} {key} [http] listen"
    return None, "default (127.0.0.1:8080)"


def check_manifests():
    for fname, wl, cms, svcs in workloads():
        where = f"{fname} {wl['kind']}/{wl['metadata']['name']}"
        tmpl = wl["spec"]["template"]
        spec = tmpl["spec"]
        c = healthscore_container(spec)
        if c is None:
            fail(f"{where}: no healthscore container")
            continue
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        if ports.get("http") != HTTP_PORT:
            fail(f"{where}: healthscore container has no port named http = {HTTP_PORT}: {ports}")
        else:
            ok(f"{where}: container port http = {HTTP_PORT}")
        listen, src = http_listen(c, spec, cms)
        if listen != f"0.0.0.0:{HTTP_PORT}":
            fail(f"{where}: http.listen is {listen!r} from {src}; kubelet probes and Prometheus "
                 f"reach the pod IP, so it must be 0.0.0.0:{HTTP_PORT}")
        else:
            ok(f"{where}: http.listen 0.0.0.0:{HTTP_PORT} ({src})")
        ann = tmpl["metadata"].get("annotations", {})
        want = {"prometheus.io/scrape": "true", "prometheus.io/port": str(HTTP_PORT),
                "prometheus.io/path": "/metrics"}
        for k, v in want.items():
            if ann.get(k) != v:
                fail(f"{where}: pod annotation {k} is {ann.get(k)!r}, want {v!r}")
        ok(f"{where}: prometheus.io annotations")
        for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
            probe = c.get(kind)
            if not probe:
                continue
            if "httpGet" in probe:
                hg = probe["httpGet"]
                port = hg["port"]
                if (isinstance(port, str) and port not in ports) or \
                        (isinstance(port, int) and port not in ports.values()):
                    fail(f"{where}: {kind} httpGet port {port!r} is not a container port")
                path = hg.get("path", "/")
                if urllib.parse.urlsplit(path).path not in ("/livez", "/readyz"):
                    fail(f"{where}: {kind} httpGet path {path!r} is not /livez or /readyz")
                ok(f"{where}: {kind} httpGet {path} on {port}")
            elif "grpc" in probe:
                if probe["grpc"]["port"] not in ports.values():
                    fail(f"{where}: {kind} grpc port {probe['grpc']['port']} is not a container port")
                ok(f"{where}: {kind} grpc {probe['grpc'].get('service', '')!r}")
        # Every Service of this file selects these pods and targets named container ports.
        labels = tmpl["metadata"].get("labels", {})
        for svc in svcs:
            sel = svc["spec"].get("selector", {})
            sname = f"{fname} Service/{svc['metadata']['name']}"
            if not sel or any(labels.get(k) != v for k, v in sel.items()):
                fail(f"{sname}: selector {sel} does not select the pods of {where}")
            for p in svc["spec"]["ports"]:
                tp = p.get("targetPort", p["port"])
                if (isinstance(tp, str) and tp not in ports) or \
                        (isinstance(tp, int) and tp not in ports.values()):
                    fail(f"{sname}: targetPort {tp!r} is not a port of the healthscore container")
            ok(f"{sname}: selects {where}, target ports exist")


def check_servicemonitor():
    path = K8S / "servicemonitor.yaml"
    docs = load_docs(path)
    services = [(f, s) for f, _, _, svcs in workloads() for s in svcs]
    monitors = [d for d in docs if d.get("kind") == "ServiceMonitor"]
    if not monitors:
        fail(f"{path.name}: no ServiceMonitor")
    for d in docs:
        if d.get("kind") != "ServiceMonitor":
            fail(f"{path.name}: unexpected {d.get('kind')} (keep core resources in the files "
                 f"kubernetes-validate checks)")
    for sm in monitors:
        name = f"{path.name} ServiceMonitor/{sm.get('metadata', {}).get('name')}"
        if sm.get("apiVersion") != "monitoring.coreos.com/v1":
            fail(f"{name}: apiVersion {sm.get('apiVersion')!r}")
        if set(sm) - {"apiVersion", "kind", "metadata", "spec"}:
            fail(f"{name}: unknown top-level keys {set(sm) - {'apiVersion', 'kind', 'metadata', 'spec'}}")
        spec = sm.get("spec", {})
        if set(spec) - SM_SPEC_KEYS:
            fail(f"{name}: unknown spec keys {sorted(set(spec) - SM_SPEC_KEYS)}")
        match = spec.get("selector", {}).get("matchLabels", {})
        if not match or set(spec.get("selector", {})) - {"matchLabels", "matchExpressions"}:
            fail(f"{name}: spec.selector must be a label selector with matchLabels")
        selected = [(f, s) for f, s in services
                    if all(s["metadata"].get("labels", {}).get(k) == v for k, v in match.items())]
        if not selected:
            fail(f"{name}: selector {match} matches no Service in sidecar.yaml or daemonset.yaml")
        else:
            ok(f"{name}: selects " + ", ".join(f"{f} Service/{s['metadata']['name']}"
                                                for f, s in selected))
        eps = spec.get("endpoints") or []
        if not eps:
            fail(f"{name}: no endpoints")
        for i, ep in enumerate(eps):
            if set(ep) - SM_ENDPOINT_KEYS:
                fail(f"{name}: endpoints[{i}] unknown keys {sorted(set(ep) - SM_ENDPOINT_KEYS)}")
            for key in ("interval", "scrapeTimeout"):
                if key in ep and not DURATION.match(str(ep[key])):
                    fail(f"{name}: endpoints[{i}].{key} {ep[key]!r} is not a duration")
            if ep.get("path", "/metrics") != "/metrics":
                fail(f"{name}: endpoints[{i}].path {ep.get('path')!r}")
            if ep.get("scheme", "http") not in ("http", "https"):
                fail(f"{name}: endpoints[{i}].scheme {ep.get('scheme')!r}")
            for r in ep.get("relabelings", []) + ep.get("metricRelabelings", []):
                if set(r) - SM_RELABEL_KEYS:
                    fail(f"{name}: endpoints[{i}] relabeling keys {sorted(set(r) - SM_RELABEL_KEYS)}")
                if "regex" in r:
                    re.compile(r["regex"])
            for f, s in selected:
                names = [p.get("name") for p in s["spec"]["ports"]]
                if ep.get("port") not in names:
                    fail(f"{name}: endpoints[{i}].port {ep.get('port')!r} is not a port of "
                         f"Service/{s['metadata']['name']} ({names})")
            ok(f"{name}: endpoints[{i}] port {ep.get('port')!r} path {ep.get('path', '/metrics')}")


def check_certificate():
    """certificate.yaml (a cert-manager custom resource) issues the Secret the TLS config of
    daemonset.yaml reads, mounted whole so renewals reach the files."""
    path = K8S / "certificate.yaml"
    certs = [d for d in load_docs(path) if d.get("kind") == "Certificate"]
    if not certs:
        fail(f"{path.name}: no Certificate")
    for fname, wl, cms, _ in workloads():
        spec = wl["spec"]["template"]["spec"]
        c = healthscore_container(spec)
        config = {}
        for cm in cms.values():
            for key, text in cm.get("data", {}).items():
                if key.endswith(".toml"):
                    config = tomllib.loads(text)
        cert = config.get("tls", {}).get("cert")
        if not cert:
            ok(f"{fname}: no TLS (plaintext on localhost or behind the pod)")
            continue
        mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
        secrets = {v["name"]: v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
        holding = [(name, m) for name, m in mounts.items()
                   if name in secrets and cert.startswith(m["mountPath"].rstrip("/") + "/")]
        if not holding:
            fail(f"{fname}: tls.cert {cert} is not in a mounted Secret")
            continue
        name, mount = holding[0]
        if "subPath" in mount:
            fail(f"{fname}: the TLS Secret is mounted with subPath: renewals would not reach it")
        issued = {d["spec"].get("secretName") for d in certs}
        if secrets[name] not in issued:
            fail(f"{fname}: the TLS Secret {secrets[name]} is not one certificate.yaml issues ({issued})")
        else:
            ok(f"{fname}: tls.cert in Secret {secrets[name]}, issued by certificate.yaml, mounted whole")
        for probe in ("livenessProbe", "readinessProbe"):
            p = c.get(probe, {})
            port = (p.get("grpc") or {}).get("port") or (p.get("httpGet") or {}).get("port")
            listen = config.get("probes", {}).get("listen", "")
            ports = {pp.get("name"): pp["containerPort"] for pp in c.get("ports", [])}
            number = ports.get(port, port)
            if not listen.endswith(f":{number}"):
                fail(f"{fname}: {probe} on port {port!r} is not the probe-only listener ({listen!r}): "
                     f"the kubelet cannot speak TLS")
            else:
                ok(f"{fname}: {probe} on the plaintext probe-only listener {listen}")


# ---------------------------------------------------------------------------------------------
# Prometheus scrape config: relabeling simulated on the manifests' pods


def sanitize(name):
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def expand(replacement, m):
    return re.sub(r"\$\{?(\w+)\}?",
                  lambda g: (m.group(int(g.group(1))) if g.group(1).isdigit()
                             else m.group(g.group(1))) or "", replacement)


def relabel(labels, configs):
    labels = dict(labels)
    for rc in configs:
        action = rc.get("action", "replace")
        value = rc.get("separator", ";").join(labels.get(s, "") for s in rc.get("source_labels", []))
        m = re.fullmatch(rc.get("regex", "(.*)"), value)
        if action == "keep" and not m:
            return None
        if action == "drop" and m:
            return None
        if action == "replace" and m:
            new = expand(rc.get("replacement", "$1"), m)
            if new:
                labels[rc["target_label"]] = new
            else:
                labels.pop(rc["target_label"], None)
        if action not in ("keep", "drop", "replace"):
            raise SystemExit(f"relabel action {action} not simulated")
    return labels


def pod_targets(wl, pod_ip):
    """What kubernetes_sd's pod role yields for one pod of this workload: one target per
    container port (one per container without ports)."""
    meta = wl["spec"]["template"]["metadata"]
    base = {"__meta_kubernetes_namespace": "default",
            "__meta_kubernetes_pod_name": wl["metadata"]["name"] + "-0",
            "__meta_kubernetes_pod_node_name": "node-0",
            "__meta_kubernetes_pod_phase": "Running"}
    for k, v in meta.get("annotations", {}).items():
        base[f"__meta_kubernetes_pod_annotation_{sanitize(k)}"] = v
    for k, v in meta.get("labels", {}).items():
        base[f"__meta_kubernetes_pod_label_{sanitize(k)}"] = v
    out = []
    for c in wl["spec"]["template"]["spec"]["containers"]:
        ports = c.get("ports") or [None]
        for p in ports:
            t = dict(base, __meta_kubernetes_pod_container_name=c["name"],
                     __meta_kubernetes_pod_container_init="false")
            if p:
                t["__address__"] = f"{pod_ip}:{p['containerPort']}"
                t["__meta_kubernetes_pod_container_port_number"] = str(p["containerPort"])
                t["__meta_kubernetes_pod_container_port_name"] = p.get("name", "")
            else:
                t["__address__"] = pod_ip
            out.append(t)
    return out


def check_scrape_config(scrape_out):
    cfg = yaml.safe_load((PROM / "scrape.yaml").read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    pod_jobs = [j for j in jobs.values()
                if any(sd.get("role") == "pod" for sd in j.get("kubernetes_sd_configs", []))]
    if not pod_jobs:
        fail("scrape.yaml: no kubernetes_sd pod job")
    scraped = {}
    for job in pod_jobs:
        for fname, wl, _, _ in workloads():
            annotations = wl["spec"]["template"]["metadata"].get("annotations", {})
            want_scheme = annotations.get("prometheus.io/scheme", "http")
            final = set()
            for t in pod_targets(wl, "10.0.0.7"):
                t = relabel(dict(t, job=job["job_name"],
                                 __metrics_path__=job.get("metrics_path", "/metrics"),
                                 __scheme__=job.get("scheme", "http")), job["relabel_configs"])
                if t is not None:
                    final.add(tuple(sorted((k, v) for k, v in t.items()
                                           if not k.startswith("__meta_"))))
            want_addr = f"10.0.0.7:{HTTP_PORT}"
            if not final:
                ok(f"scrape.yaml job {job['job_name']}: {fname} pod not scraped by this job")
                continue
            if len(final) != 1:
                fail(f"scrape.yaml job {job['job_name']}: {fname} yields {len(final)} distinct "
                     f"targets, want 1: {final}")
                continue
            scraped.setdefault(fname, []).append(job["job_name"])
            if want_scheme == "https" and not (job.get("authorization") and job.get("tls_config")):
                fail(f"scrape.yaml job {job['job_name']}: scrapes the HTTPS pods of {fname} "
                     f"without authorization and tls_config")
            t = dict(next(iter(final)))
            if (t["__address__"], t["__metrics_path__"], t["__scheme__"]) != \
                    (want_addr, "/metrics", want_scheme):
                fail(f"scrape.yaml job {job['job_name']}: {fname} -> {t}")
            else:
                ok(f"scrape.yaml job {job['job_name']}: {fname} pod -> "
                   f"{t['__scheme__']}://{t['__address__']}{t['__metrics_path__']} "
                   f"(labels {', '.join(f'{k}={v}' for k, v in t.items() if not k.startswith('__'))})")
    for fname, _, _, _ in workloads():
        jobs_of = scraped.get(fname, [])
        if len(jobs_of) != 1:
            fail(f"scrape.yaml: the pods of {fname} are scraped by {len(jobs_of)} pod jobs "
                 f"({jobs_of}), want exactly 1")
    # What Debian's promtool can check: everything but Kubernetes discovery, rules included.
    cfg["scrape_configs"] = [j for j in cfg["scrape_configs"] if "kubernetes_sd_configs" not in j]
    cfg["rule_files"] = [str(PROM / f) for f in cfg.get("rule_files", [])]
    Path(scrape_out).write_text(yaml.safe_dump(cfg, sort_keys=False))
    ok(f"scrape.yaml without kubernetes_sd jobs written to {scrape_out}")


# ---------------------------------------------------------------------------------------------
# Grafana dashboard


def dashboard_exprs(dash):
    for p in dash["panels"]:
        for t in p.get("targets", []):
            yield p, t


def substitute(expr, rate_interval="15s"):
    return (expr.replace("$__rate_interval", rate_interval).replace("$job", ".*")
            .replace("$instance", ".*"))


def check_dashboard():
    dash = json.loads(DASHBOARD.read_text())
    name = DASHBOARD.name
    for key in ("title", "uid", "panels", "templating", "schemaVersion", "time"):
        if key not in dash:
            fail(f"{name}: no {key}")
    if not 36 <= dash.get("schemaVersion", 0) <= 41:
        fail(f"{name}: schemaVersion {dash.get('schemaVersion')}")
    if dash.get("id") is not None:
        fail(f"{name}: id must be null so that Grafana assigns one on import")
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables.get("DS_PROMETHEUS", {})
    if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        fail(f"{name}: templating needs DS_PROMETHEUS, a prometheus datasource variable")
    for var in ("job", "instance"):
        v = variables.get(var)
        if not v or v.get("type") != "query" or v.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
            fail(f"{name}: templating needs a query variable {var} on ${{DS_PROMETHEUS}}")
    ids, cells = set(), {}
    kinds = set()
    for p in dash["panels"]:
        kinds.add(p["type"])
        if p["id"] in ids:
            fail(f"{name}: duplicate panel id {p['id']}")
        ids.add(p["id"])
        g = p["gridPos"]
        if g["x"] < 0 or g["w"] < 1 or g["x"] + g["w"] > 24 or g["h"] < 1:
            fail(f"{name}: panel {p['title']!r} gridPos {g} out of the 24-column grid")
        overlaps = set()
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    overlaps.add(cells[(x, y)])
                cells[(x, y)] = p["title"]
        for other in sorted(overlaps):
            fail(f"{name}: panels {other!r} and {p['title']!r} overlap")
        if p["type"] == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
            fail(f"{name}: panel {p['title']!r} datasource is not ${{DS_PROMETHEUS}}")
        refs = [t["refId"] for t in p.get("targets", [])]
        if not refs or len(refs) != len(set(refs)):
            fail(f"{name}: panel {p['title']!r} needs targets with distinct refIds")
        for t in p["targets"]:
            if t.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
                fail(f"{name}: panel {p['title']!r} target {t['refId']} datasource")
            expr = t.get("expr", "")
            for metric in re.findall(r"\bhealthscore_\w+", expr):
                base = metric[:-len("_total")] if metric.endswith("_total") else metric
                if base not in FAMILIES:
                    fail(f"{name}: panel {p['title']!r} reads {metric}, which healthscore does not export")
            if "$job" not in expr or "$instance" not in expr:
                fail(f"{name}: panel {p['title']!r} ignores the job/instance variables")
    need = {"stat", "timeseries", "state-timeline", "table"}
    if need - kinds:
        fail(f"{name}: no panel of type {sorted(need - kinds)}")
    ok(f"{name}: {len(ids)} panels ({', '.join(sorted(kinds))}), variables "
       f"{', '.join(variables)}")


def rule_metric_names():
    names = set()
    for g in yaml.safe_load((PROM / "rules.yaml").read_text())["groups"]:
        for r in g["rules"]:
            names.update(re.findall(r"\bhealthscore_\w+", r["expr"]))
            for a in r.get("annotations", {}).values():
                names.update(re.findall(r"\bhealthscore_\w+", a))
    return names


def check_rules_names():
    for metric in sorted(rule_metric_names()):
        base = metric[:-len("_total")] if metric.endswith("_total") else metric
        if base not in FAMILIES and base not in CONFIGURED_FAMILIES:
            fail(f"rules.yaml reads {metric}, which healthscore does not export")
    ok("rules.yaml reads only exported families")


# ---------------------------------------------------------------------------------------------
# A live scrape


def check_openmetrics(path, content_type):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    text = Path(path).read_text()
    if not content_type.startswith("application/openmetrics-text"):
        fail(f"/metrics asked for OpenMetrics answered Content-Type {content_type!r}")
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser raises ValueError with the offending line
        fail(f"/metrics is not valid OpenMetrics: {e}")
        return
    ok(f"/metrics parses as strict OpenMetrics ({len(families)} families)")
    by_name = {f.name: f for f in families}
    for fam, typ in FAMILIES.items():
        f = by_name.get(fam)
        if f is None:
            fail(f"/metrics has no {fam} family")
        elif f.type != typ:
            fail(f"/metrics {fam} is a {f.type}, want {typ}")
        elif not f.documentation:
            fail(f"/metrics {fam} has no HELP")
    seen = set()
    for f in families:
        for s in f.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            if key in seen:
                fail(f"/metrics has a duplicate series {s.name}{s.labels}")
            seen.add(key)

    def samples(fam, **labels):
        return [s for s in by_name[fam].samples
                if all(s.labels.get(k) == v for k, v in labels.items())] if fam in by_name else []

    # The state .ci/prometheus.sh pushed: mainDB at 87.5% (warning), app-gone stale (critical).
    checks = [
        ("healthscore_subsystem_score", {"subsystem": "datasources"}, 75),
        ("healthscore_subsystem_available", {"subsystem": "datasources"}, 1),
        ("healthscore_subsystem_status", {"subsystem": "datasources", "status": "warning"}, 1),
        ("healthscore_subsystem_status", {"subsystem": "datasources", "status": "healthy"}, 0),
        ("healthscore_subsystem_status", {"subsystem": "datasources", "status": "critical"}, 0),
        ("healthscore_subsystem_status", {"subsystem": "watchers", "status": "critical"}, 1),
        ("healthscore_subsystem_available", {"subsystem": "caches"}, 0),
        ("healthscore_system_status", {}, 2),
        ("healthscore_system_score", {}, 50),
        ("healthscore_source_stale", {"source": "app-gone"}, 1),
        ("healthscore_issue", {"subsystem": "datasources", "code": "DS_POOL_HIGH_UTILIZATION",
                               "severity": "warning", "entity": "mainDB", "source": "app-1"}, 1),
        ("healthscore_issue", {"subsystem": "watchers", "code": "SOURCE_STALE",
                               "severity": "critical", "source": "app-gone"}, 1),
        ("healthscore_pushes", {"result": "accepted"}, None),
    ]
    for fam, labels, want in checks:
        got = samples(fam, **labels)
        if len(got) != 1:
            fail(f"/metrics {fam}{labels}: {len(got)} series, want 1")
        elif want is not None and got[0].value != want:
            fail(f"/metrics {fam}{labels} = {got[0].value}, want {want}")
        else:
            ok(f"/metrics {fam}{labels} = {got[0].value}")
    for sub in SUBSYSTEMS:
        states = {s.labels.get("status"): s.value
                  for s in samples("healthscore_subsystem_status", subsystem=sub)}
        if set(states) != {"healthy", "warning", "critical"} or sum(states.values()) != 1:
            fail(f"/metrics healthscore_subsystem_status{{subsystem={sub!r}}} is not a state set "
                 f"of healthy|warning|critical with exactly one 1: {states}")
    # Every family deploy/ reads is exported (a rename in the code breaks alerts silently).
    for metric in sorted(rule_metric_names()):
        base = metric[:-len("_total")] if metric.endswith("_total") else metric
        if base not in by_name and base not in CONFIGURED_FAMILIES:
            fail(f"rules.yaml reads {metric}, absent from /metrics")


def prom_get(url, path, **params):
    q = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}{path}?{q}", timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{path} {params}: {body}")
    return body["data"]


def check_prometheus(url, instance):
    # The CI state has a critical system and a stale source: their alerts turn pending at the
    # first rule evaluation (both wait longer than CI does before firing). Nothing else fires.
    want = {"HealthscoreSystemCritical": {"instance": instance},
            "HealthscoreSourceStale": {"instance": instance, "source": "app-gone"}}
    deadline = time.time() + 20
    while True:
        alerts = prom_get(url, "/api/v1/alerts")["alerts"]
        found = {a["labels"]["alertname"]: a for a in alerts}
        missing = [n for n, labels in want.items()
                   if n not in found or any(found[n]["labels"].get(k) != v for k, v in labels.items())]
        if not missing or time.time() > deadline:
            break
        time.sleep(1)
    for n in want:
        if n in missing:
            fail(f"alert {n} is not pending for {want[n]} (alerts: {alerts})")
        else:
            ok(f"alert {n} {found[n]['state']} {found[n]['labels']}")
    for n in ("HealthscoreSubsystemScoreLow", "HealthscoreTargetDown"):
        if n in found:
            fail(f"alert {n} is {found[n]['state']} on a state that must not trigger it: {found[n]}")
    for rg in prom_get(url, "/api/v1/rules")["groups"]:
        for r in rg["rules"]:
            if r.get("health") != "ok":
                fail(f"rule {r['name']} health {r.get('health')}: {r.get('lastError')}")
    # Dashboard variables and queries, with the variables at All.
    dash = json.loads(DASHBOARD.read_text())
    for label, match in (("job", "healthscore_system_score"), ("instance", "healthscore_system_score")):
        values = prom_get(url, f"/api/v1/label/{label}/values", **{"match[]": match})
        if instance not in values and label == "instance":
            fail(f"dashboard variable {label}: {values} lacks {instance}")
        else:
            ok(f"dashboard variable {label}: {values}")
    # rate() needs two samples in its window: give the 1 s scrapes up to 20 s.
    deadline = time.time() + 20
    for p, t in dashboard_exprs(dash):
        expr = substitute(t["expr"])
        while True:
            try:
                data = prom_get(url, "/api/v1/query", query=expr)
            except Exception as e:
                fail(f"dashboard panel {p['title']!r}: {expr}: {e}")
                break
            if data["result"]:
                ok(f"dashboard panel {p['title']!r}: {len(data['result'])} series")
                break
            if time.time() > deadline:
                fail(f"dashboard panel {p['title']!r} has no data on the CI state: {expr}")
                break
            time.sleep(1)


def check_configs(binary):
    """`healthscore config check` on each workload's mounted config with its container's
    HEALTHSCORE_* environment, so the manifests use keys the binary knows."""
    import os
    import subprocess
    import tempfile

    for fname, wl, cms, _ in workloads():
        where = f"{fname} {wl['kind']}/{wl['metadata']['name']}"
        spec = wl["spec"]["template"]["spec"]
        c = healthscore_container(spec)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
        env.update({e["name"]: e["value"] for e in c.get("env", [])
                    if e["name"].startswith("HEALTHSCORE_") and "value" in e})
        mounts = {m["name"] for m in c.get("volumeMounts", [])}
        tomls = [text for v in spec.get("volumes", []) if v["name"] in mounts and "configMap" in v
                 for key, text in cms.get(v["configMap"]["name"], {}).get("data", {}).items()
                 if key.endswith(".toml")]
        if not tomls:
            fail(f"{where}: no mounted healthscore.toml")
        secrets = {v["name"] for v in spec.get("volumes", []) if "secret" in v}
        secret_mounts = [m["mountPath"] for m in c.get("volumeMounts", [])
                         if m["name"] in secrets]
        for text in tomls:
            with tempfile.TemporaryDirectory() as scratch:
                # config check loads the TLS and token files; the Secrets' files do not exist
                # here, so stand-ins are made under a scratch directory and the paths rewritten.
                for mount in secret_mounts:
                    stand_in = Path(scratch) / mount.strip("/")
                    for path in set(re.findall(re.escape(mount) + r"/[\w.-]+", text)):
                        make_stand_in(stand_in / Path(path).name)
                    text = text.replace(mount, str(stand_in))
                config = Path(scratch) / "healthscore.toml"
                config.write_text(text)
                r = subprocess.run([binary, "config", "check", str(config)], env=env,
                                   capture_output=True, text=True)
            if r.returncode != 0:
                fail(f"{where}: healthscore config check: {(r.stderr or r.stdout).strip()}")
            else:
                ok(f"{where}: healthscore config check passes on its ConfigMap and env")


def make_stand_in(path):
    """A file a Secret would hold: a self-signed certificate and its key, or a token."""
    import subprocess

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".crt", ".key", ".pem"):
        crt, key = path.with_suffix(".crt"), path.with_suffix(".key")
        if not crt.exists():
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-days", "30", "-subj",
                            "/CN=healthscore", "-keyout", str(key), "-out", str(crt)],
                           check=True, capture_output=True)
    else:
        path.write_text("c3RhbmQtaW4tdG9rZW4tZm9yLWNvbmZpZy1jaGVjaw==\n")


def main(argv):
    if len(argv) >= 2 and argv[1] == "static" and len(argv) == 3:
        check_manifests()
        check_servicemonitor()
        check_certificate()
        check_scrape_config(argv[2])
        check_dashboard()
        check_rules_names()
    elif len(argv) == 4 and argv[1] == "openmetrics":
        check_openmetrics(argv[2], argv[3])
    elif len(argv) == 3 and argv[1] == "configs":
        check_configs(argv[2])
    elif len(argv) == 4 and argv[1] == "prometheus":
        check_prometheus(argv[2], argv[3])
    else:
        sys.exit(__doc__)
    finish()


if __name__ == "__main__":
    main(sys.argv)
