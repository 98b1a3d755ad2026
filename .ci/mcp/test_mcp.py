#!/usr/bin/env python3
"""The MCP face of a running healthscore, through the official MCP Python SDK (`mcp`).

.ci/mcp.sh starts the server, pushes a healthy state (the pool mainDB at 20% from app-1, an
entity in every other subsystem from app-2) and runs this. It runs four passes: streamable HTTP
at {--http}/mcp and stdio (`healthscore mcp --addr GRPC`, launched by the SDK), each in both of
the SDK's protocol eras: the initialize handshake (2025-11-25, a stateful session with
Mcp-Session-Id, resources/subscribe) and the per-request 2026-07-28 (server/discover, which the
SDK's Client picks by default, and subscriptions/listen). Each pass checks:

- initialize (or server/discover): the protocol version, the tools and resources capabilities
  (with subscribe, in the handshake era);
- tools/list: exactly the ten *_get_health tools (health_get_history may be there too, and must
  be with MCP_EXPECT_HISTORY=1), each taking min_severity (info|warning|critical) and
  include_entities (boolean, default true);
- resources: health://system and health://{key} for every subsystem, listed (or covered by a
  template), application/json;
- every tool and every resource against GET /v1/health[/key] read just before and after it:
  structuredContent is the report JSON exactly (status, score and issue codes first), with one
  text item holding the same JSON; min_severity and include_entities=false as ?min_severity=
  and ?entities=false;
- min_severity "loud" is an error naming min_severity (JSON-RPC -32602, or isError); an unknown
  tool is an error and the session goes on working;
- subscribed to health://datasources, a push (healthscore push --source app-1) of the pool
  saturated brings notifications/resources/updated for that URI within 5 s, and
  health://datasources then reads critical.

Over HTTP in the handshake era it also checks that every request carried the one session id,
that DELETE ends the session (a later request is 404) and that a foreign Origin is refused.
Before each pass it pushes the pool healthy again. One line per check, then
`N passed, N failed`; exits 1 when a check failed.
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
import warnings
from contextlib import AsyncExitStack
from urllib.parse import urlencode

import anyio
import httpx2
import mcp.types as types
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import listen
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION, LATEST_MODERN_VERSION

KEYS = ["datasources", "caches", "watchers", "schedulers", "executors", "webServer", "runtime",
        "performance", "host"]
# Each tool and the subsystem it reads (None: the system report).
TOOLS = {
    "system_get_health": None,
    "datasource_get_health": "datasources",
    "cache_get_health": "caches",
    "watcher_get_health": "watchers",
    "scheduler_get_health": "schedulers",
    "executor_get_health": "executors",
    "undertow_get_health": "webServer",
    "runtime_get_health": "runtime",
    "performance_get_health": "performance",
    "host_get_health": "host",
}
HISTORY = "health_get_history"
SEVERITIES = ["info", "warning", "critical"]
STATUSES = {"healthy", "warning", "critical"}
WATCHED = "health://datasources"
UPDATE_WITHIN = 5.0  # seconds from the push to notifications/resources/updated
INVALID_PARAMS = -32602
# The protocol eras: the initialize handshake (ClientSession.initialize offers the newest,
# 2025-11-25) with resources/subscribe, and the per-request 2026-07-28 (server/discover, what the
# SDK's Client picks by default) with subscriptions/listen.
LEGACY, MODERN = LATEST_HANDSHAKE_VERSION, LATEST_MODERN_VERSION


class Failed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failed(message)


def short(value, limit=160):
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + "..."


def difference(got, want, path="$"):
    """Where `got` first differs from `want`, as 'path: got ... want ...'; None when equal."""
    if isinstance(got, dict) and isinstance(want, dict):
        for key in sorted(set(got) | set(want)):
            if key not in got:
                return f"{path}.{key}: missing (GET has {short(want[key])})"
            if key not in want:
                return f"{path}.{key}: {short(got[key])} is not in GET's"
            found = difference(got[key], want[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(got, list) and isinstance(want, list):
        for index, (a, b) in enumerate(zip(got, want)):
            found = difference(a, b, f"{path}[{index}]")
            if found:
                return found
        if len(got) != len(want):
            return f"{path}: {len(got)} items, GET has {len(want)}"
        return None
    if got != want or (type(got) is bool) != (type(want) is bool):
        return f"{path}: {short(got)}, GET has {short(want)}"
    return None


def codes(report):
    return [issue.get("code") for issue in report.get("issues", [])]


def summary(report):
    return f"{report.get('status')}, score {report.get('score')}, {len(report.get('issues', []))} issues"


def http_path(key):
    return "/v1/health" if key is None else f"/v1/health/{key}"


def query(arguments):
    """The GET query that asks for what a tool call's arguments ask."""
    params = {}
    if arguments.get("min_severity") is not None:
        params["min_severity"] = arguments["min_severity"]
    if arguments.get("include_entities") is False:
        params["entities"] = "false"
    return params


def check_shape(report, key, what):
    """The report JSON's shape: the system's (key None) or one subsystem's."""
    check(isinstance(report, dict), f"{what}: not a JSON object: {short(report)}")
    for field in ("status", "score", "issues"):
        check(field in report, f"{what}: no {field!r} in {sorted(report)}")
    check(report["status"] in STATUSES, f"{what}: status {report['status']!r}")
    check(isinstance(report["score"], int) and 0 <= report["score"] <= 100,
          f"{what}: score {report['score']!r}")
    check(isinstance(report["issues"], list), f"{what}: issues is not a list")
    for issue in report["issues"]:
        for field in ("code", "severity", "message", "suggestedAction"):
            check(isinstance(issue.get(field), str), f"{what}: an issue without {field}: {short(issue)}")
        check(issue["severity"] in SEVERITIES, f"{what}: issue severity {issue['severity']!r}")
    if key is None:
        subsystems = report.get("subsystems")
        check(isinstance(subsystems, dict) and sorted(subsystems) == sorted(KEYS),
              f"{what}: subsystems {short(sorted(subsystems or {}))}, expected {sorted(KEYS)}")
    else:
        check(report.get("subsystem") == key, f"{what}: subsystem {report.get('subsystem')!r}")
        check(isinstance(report.get("entities", []), list), f"{what}: entities is not a list")


class Run:
    """The server under test, the checks' tally and what the notifications brought."""

    def __init__(self, args):
        self.args = args
        self.base = args.http.rstrip("/")
        self.passed = 0
        self.failed = 0
        self.label = ""
        self.updates = []  # (monotonic time, uri) of notifications/resources/updated
        self.updated = anyio.Event()
        self.stream_errors = []
        self.session_ids = set()  # Mcp-Session-Id values seen on responses (HTTP)
        self.sent_ids = []  # Mcp-Session-Id values sent on requests after initialize (HTTP)

    # -- the tally

    async def step(self, name, action, timeout=20):
        try:
            with anyio.fail_after(timeout):
                detail = await action()
        except Exception as error:  # one check's failure does not stop the others
            self.failed += 1
            message = str(error) or type(error).__name__
            if isinstance(error, TimeoutError):
                message = f"no answer within {timeout} s"
            elif not isinstance(error, Failed):
                message = f"{type(error).__name__}: {message}"
            print(f"FAIL  {self.label}: {name}: {message}", flush=True)
            return False
        self.passed += 1
        print(f"ok    {self.label}: {name}" + (f" ({detail})" if detail else ""), flush=True)
        return True

    # -- the references: GET on the HTTP listener, pushes with the CLI

    def _get(self, url):
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            if error.code == 503:  # the report of a system or subsystem not serving
                return json.load(error)
            raise Failed(f"GET {url}: {error.code} {error.read()[:300]!r}") from None

    async def get(self, key, params=None):
        url = self.base + http_path(key) + (f"?{urlencode(params)}" if params else "")
        return await anyio.to_thread.run_sync(self._get, url)

    async def push(self, snapshot):
        command = [self.args.bin, "push", "--addr", self.args.grpc, "--source", "app-1", "--ttl",
                   "600s", snapshot]
        done = await anyio.run_process(command, check=False)
        check(done.returncode == 0, f"{' '.join(command)}: exit {done.returncode}: "
              f"{done.stderr.decode(errors='replace').strip()}")
        return done.stdout.decode(errors="replace").strip()

    async def settle(self, snapshot, status):
        """Push `snapshot` and wait until GET /v1/health/datasources reads `status`."""
        await self.push(snapshot)
        with anyio.fail_after(10):
            while (await self.get("datasources"))["status"] != status:
                await anyio.sleep(0.1)

    async def same_moment(self, call, key, params=None):
        """`call()`'s answer and GET's read just before and after it, when those two agree."""
        for _ in range(10):
            before = await self.get(key, params)
            got = await call()
            after = await self.get(key, params)
            if before == after:
                return got, after
            await anyio.sleep(0.2)  # the host sampler moved under the call: again
        raise Failed(f"GET {http_path(key)} changed under every one of 10 calls")

    # -- the notifications

    async def on_message(self, message):
        if isinstance(message, Exception):
            self.stream_errors.append(message)
        elif isinstance(message, types.ResourceUpdatedNotification):
            self.updates.append((time.monotonic(), str(message.params.uri)))
            self.updated.set()

    # -- the checks, over one initialized session

    async def tool_report(self, session, name, arguments=None):
        result = await session.call_tool(name, arguments or {})
        what = f"{name}({short(arguments or {})})"
        text = " ".join(getattr(item, "text", "") for item in result.content)
        check(not result.is_error, f"{what}: isError: {short(text, 300)}")
        report = result.structured_content
        check(isinstance(report, dict), f"{what}: no structuredContent (content: {short(text)})")
        kinds = [item.type for item in result.content]
        check(kinds == ["text"], f"{what}: content {kinds}, expected one text item")
        try:
            serialized = json.loads(result.content[0].text)
        except ValueError as error:
            raise Failed(f"{what}: the text item is not JSON ({error})") from None
        found = difference(serialized, report)
        check(found is None, f"{what}: the text item is not structuredContent: {found}")
        return report

    async def compare_tool(self, session, name, arguments=None):
        """Calls a tool; checks its report equals GET's; returns it."""
        arguments = arguments or {}
        key = TOOLS[name]
        got, want = await self.same_moment(lambda: self.tool_report(session, name, arguments), key,
                                           query(arguments))
        what = f"{name}({short(arguments)})"
        check_shape(got, key, what)
        check(got["status"] == want["status"], f"{what}: status {got['status']!r}, GET has {want['status']!r}")
        check(got["score"] == want["score"], f"{what}: score {got['score']!r}, GET has {want['score']!r}")
        check(codes(got) == codes(want), f"{what}: issue codes {codes(got)}, GET has {codes(want)}")
        found = difference(got, want)
        check(found is None, f"{what}: not GET {http_path(key)}'s JSON: {found}")
        return got

    async def read_report(self, session, uri):
        result = await session.read_resource(uri)
        check(len(result.contents) == 1, f"{uri}: {len(result.contents)} contents, expected 1")
        contents = result.contents[0]
        check(str(contents.uri) == uri, f"{uri}: the contents name {contents.uri}")
        check(contents.mime_type == "application/json", f"{uri}: mimeType {contents.mime_type!r}")
        check(isinstance(getattr(contents, "text", None), str), f"{uri}: not text contents")
        try:
            return json.loads(contents.text)
        except ValueError as error:
            raise Failed(f"{uri}: not JSON ({error})") from None

    async def checks(self, session, transport, era):
        async def initialize():
            if era == MODERN:
                result = await session.discover()
                check(session.protocol_version == MODERN,
                      f"protocol {session.protocol_version} (server supports {result.supported_versions})")
                detail = f"server/discover: protocol {MODERN} of {result.supported_versions}"
            else:
                result = await session.initialize()
                check(result.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS,
                      f"protocol {result.protocol_version}")
                detail = f"initialize: protocol {result.protocol_version}"
            capabilities = session.server_capabilities
            check(capabilities.tools is not None, "no tools capability")
            check(capabilities.resources is not None, "no resources capability")
            if era != MODERN:  # 2026-07-28 has subscriptions/listen for every server instead
                check(capabilities.resources.subscribe is True, "resources capability without subscribe")
            info = session.server_info
            detail += f", server {info.name} {info.version}" if info else ", server unnamed"
            if transport == "http" and era != MODERN:
                check(len(self.session_ids) == 1,
                      f"Mcp-Session-Id on the initialize response: {sorted(self.session_ids) or 'none'}")
                detail += ", Mcp-Session-Id given"
            return detail

        if not await self.step("initialize" if era != MODERN else "server/discover", initialize):
            return  # nothing else can work

        async def tools():
            listed, cursor = [], None
            while True:
                params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                page = await session.list_tools(params=params)
                listed += page.tools
                cursor = page.next_cursor
                if not cursor:
                    break
            names = [tool.name for tool in listed]
            check(len(names) == len(set(names)), f"a tool listed twice: {names}")
            expected = set(TOOLS) | ({HISTORY} if os.environ.get("MCP_EXPECT_HISTORY") == "1" else set())
            check(expected <= set(names) <= expected | {HISTORY},
                  f"tools {sorted(names)}; missing {sorted(expected - set(names))}, "
                  f"unexpected {sorted(set(names) - expected - {HISTORY})}")
            for tool in listed:
                schema = tool.input_schema
                properties = schema.get("properties") or {}
                check(schema.get("type") == "object", f"{tool.name}: inputSchema type {schema.get('type')!r}")
                if tool.name == HISTORY:
                    continue
                severity = properties.get("min_severity") or {}
                check(severity.get("type") == "string" and sorted(severity.get("enum") or []) == sorted(SEVERITIES),
                      f"{tool.name}: min_severity is {short(severity)}, expected a string enum {SEVERITIES}")
                entities = properties.get("include_entities") or {}
                check(entities.get("type") == "boolean",
                      f"{tool.name}: include_entities is {short(entities)}, expected a boolean")
                check(entities.get("default", True) is True,
                      f"{tool.name}: include_entities defaults to {entities.get('default')!r}")
                required = set(schema.get("required") or [])
                check(not required & {"min_severity", "include_entities"},
                      f"{tool.name}: requires {sorted(required)}")
                check(tool.description, f"{tool.name}: no description")
            history = " + health_get_history" if HISTORY in names else ""
            return f"{len(TOOLS)} tools{history}, each with min_severity and include_entities"

        await self.step("tools/list", tools)

        async def resources():
            listed, cursor = [], None
            while True:
                params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                page = await session.list_resources(params=params)
                listed += page.resources
                cursor = page.next_cursor
                if not cursor:
                    break
            try:
                templates = (await session.list_resource_templates()).resource_templates
            except MCPError:
                templates = []  # no templates is fine when resources/list names them all
            uris = {str(resource.uri): resource for resource in listed}
            for uri, resource in uris.items():
                if uri.startswith("health://"):
                    check(resource.mime_type == "application/json", f"{uri}: mimeType {resource.mime_type!r}")
            templated = [t.uri_template for t in templates if t.uri_template.startswith("health://{")]
            for template in templates:
                if template.uri_template.startswith("health://"):
                    check(template.mime_type in (None, "application/json"),
                          f"{template.uri_template}: mimeType {template.mime_type!r}")
            missing = [f"health://{name}" for name in ["system", *KEYS] if f"health://{name}" not in uris]
            check(not missing or templated, f"not listed and no health://{{...}} template: {missing}")
            return (f"{len([u for u in uris if u.startswith('health://')])} health:// resources listed"
                    + (f", templates {templated}" if templated else ""))

        await self.step("resources/list", resources)

        # Every tool, then every resource, against GET at the same moment.
        for name, key in TOOLS.items():
            async def tool(name=name, key=key):
                report = await self.compare_tool(session, name)
                return f"= GET {http_path(key)}: {summary(report)}"
            await self.step(f"tools/call {name}", tool)

        for key in [None, *KEYS]:
            uri = f"health://{key or 'system'}"

            async def resource(uri=uri, key=key):
                got, want = await self.same_moment(lambda: self.read_report(session, uri), key)
                check_shape(got, key, uri)
                found = difference(got, want)
                check(found is None, f"{uri}: not GET {http_path(key)}'s JSON: {found}")
                return f"= GET {http_path(key)}: {summary(got)}"
            await self.step(f"resources/read {uri}", resource)

        # min_severity on the system report, whose issues span info to warning (or worse).
        async def spread():
            report = await self.tool_report(session, "system_get_health")
            severities = {issue["severity"] for issue in report["issues"]}
            check({"info", "warning"} <= severities,
                  f"the pushed state should give info and warning issues; severities {sorted(severities)}")
            return f"severities {sorted(severities)}"
        await self.step("the system's issues span severities (the state the filter checks read)", spread)

        for level in SEVERITIES:
            async def filtered(level=level):
                report = await self.compare_tool(session, "system_get_health", {"min_severity": level})
                kept = {issue["severity"] for issue in report["issues"]}
                low = [s for s in kept if SEVERITIES.index(s) < SEVERITIES.index(level)]
                check(not low, f"issues below {level} kept: {low}")
                return f"= GET /v1/health?min_severity={level}: {len(report['issues'])} issues"
            await self.step(f"system_get_health min_severity={level}", filtered)

        async def no_entities():
            for name, arguments in [("datasource_get_health", {"include_entities": False}),
                                    ("system_get_health", {"include_entities": False}),
                                    ("executor_get_health", {"include_entities": False, "min_severity": "warning"})]:
                report = await self.compare_tool(session, name, arguments)
                lists = [report] if TOOLS[name] else list(report["subsystems"].values())
                listed = sum(len(part.get("entities") or []) for part in lists)
                check(listed == 0, f"{name}: {listed} entities listed with include_entities=false")
            both = await self.compare_tool(session, "datasource_get_health", {"include_entities": True})
            check(both.get("entities"), "datasource_get_health(include_entities=true): no entities")
            return "= GET ?entities=false: no entities listed; include_entities=true lists them"
        await self.step("include_entities=false", no_entities)

        async def bad_severity():
            try:
                result = await session.call_tool("datasource_get_health", {"min_severity": "loud"})
            except MCPError as error:
                check(error.code == INVALID_PARAMS,
                      f"JSON-RPC error {error.code} ({error.message}), expected {INVALID_PARAMS}")
                check("min_severity" in error.message, f"the error does not name min_severity: {error.message!r}")
                return f"JSON-RPC error {error.code}: {error.message}"
            text = " ".join(getattr(item, "text", "") for item in result.content)
            check(result.is_error, f"no error: {short(result.structured_content or text)}")
            check("min_severity" in text, f"the error does not name min_severity: {text!r}")
            return f"isError: {short(text)}"
        await self.step('min_severity "loud" is an error naming min_severity', bad_severity)

        async def unknown_tool():
            try:
                result = await session.call_tool("no_such_tool", {})
            except MCPError as error:
                detail = f"JSON-RPC error {error.code}: {error.message}"
            else:
                text = " ".join(getattr(item, "text", "") for item in result.content)
                check(result.is_error, f"no error: {short(result.structured_content or text)}")
                detail = f"isError: {short(text)}"
            report = await self.compare_tool(session, "system_get_health")
            return f"{detail}; then system_get_health: {summary(report)}"
        await self.step("an unknown tool is an error, and the session goes on", unknown_tool)

        # Subscribed to health://datasources, the push that turns datasources critical.
        async def updated_after_push():
            await anyio.sleep(0.5)
            early = [uri for _, uri in self.updates]
            self.updates.clear()
            self.updated = anyio.Event()
            pushed = time.monotonic()
            answer = await self.push(self.args.critical)
            with anyio.move_on_after(UPDATE_WITHIN):
                while not any(uri == WATCHED for _, uri in self.updates):
                    await self.updated.wait()
                    self.updated = anyio.Event()
            arrived = [at for at, uri in self.updates if uri == WATCHED]
            check(arrived, f"no notifications/resources/updated for {WATCHED} within {UPDATE_WITHIN} s "
                  f"of the push ({answer}); updates: {[uri for _, uri in self.updates]}"
                  + (f"; transport errors: {self.stream_errors}" if self.stream_errors else ""))
            others = sorted({uri for _, uri in self.updates if uri != WATCHED})
            return (f"updated {(arrived[0] - pushed) * 1000:.0f} ms after the push"
                    + (f"; also for {others}" if others else "")
                    + (f"; {len(early)} before it" if early else ""))

        if era == MODERN:
            async def listened():
                async with listen(session, resource_subscriptions=[WATCHED]) as subscription:
                    honored = subscription.honored.resource_subscriptions or []
                    check(honored == [WATCHED], f"the server honored {honored}")
                    detail = await updated_after_push()
                    with anyio.fail_after(1):  # the stream's own event, as Client.listen reads it
                        event = await subscription.__anext__()
                    check(getattr(event, "uri", None) == WATCHED, f"the stream's event: {event}")
                    return detail
            subscribed = await self.step(f"subscriptions/listen {WATCHED}, push critical: resources/updated",
                                         listened)
        else:
            async def subscribe():
                with warnings.catch_warnings():
                    # resources/subscribe is the 2025 protocols' way (2026-07-28 has subscriptions/listen)
                    warnings.simplefilter("ignore", MCPDeprecationWarning)
                    await session.subscribe_resource(WATCHED)
                return await updated_after_push()
            subscribed = await self.step(f"resources/subscribe {WATCHED}, push critical: resources/updated",
                                         subscribe)
        if not subscribed:
            # The rest reads the critical state: make sure it is there.
            await self.settle(self.args.critical, "critical")

        async def read_critical():
            got, want = await self.same_moment(lambda: self.read_report(session, WATCHED), "datasources")
            check(got["status"] == "critical", f"{WATCHED}: status {got['status']!r} after the push")
            check("DS_POOL_SATURATED" in codes(got), f"{WATCHED}: issues {codes(got)}")
            found = difference(got, want)
            check(found is None, f"{WATCHED}: not GET /v1/health/datasources's JSON: {found}")
            return f"{summary(got)}: {codes(got)}"
        await self.step(f"resources/read {WATCHED} after the push", read_critical)

        for level, expected in [("critical", ["DS_POOL_SATURATED"]),
                                ("warning", ["DS_POOL_SATURATED", "DS_POOL_THREADS_AWAITING"])]:
            async def critical(level=level, expected=expected):
                report = await self.compare_tool(session, "datasource_get_health", {"min_severity": level})
                check(report["status"] == "critical", f"status {report['status']!r}")
                check(sorted(codes(report)) == sorted(expected), f"issues {codes(report)}, expected {expected}")
                return f"= GET /v1/health/datasources?min_severity={level}: {codes(report)}"
            await self.step(f"datasource_get_health min_severity={level}, critical", critical)

        async def system_critical():
            report = await self.compare_tool(session, "system_get_health")
            check(report["status"] == "critical", f"status {report['status']!r}")
            check("datasources:DS_POOL_SATURATED" in codes(report), f"issues {codes(report)}")
            return f"= GET /v1/health: {summary(report)}"
        await self.step("system_get_health, critical", system_critical)

        # The history after the critical push: the transitions equal GET /v1/history's.
        async def history():
            arguments = {"subsystem": "datasources", "limit": 5}
            got = await self.tool_report(session, HISTORY, arguments)
            url = f"{self.base}/v1/history?{urlencode(arguments)}"
            want = await anyio.to_thread.run_sync(self._get, url)
            found = difference(got["transitions"], want["transitions"])
            check(found is None, f"{HISTORY}: transitions are not GET /v1/history's: {found}")
            latest = got["transitions"][0] if got["transitions"] else {}
            check(latest.get("to") == "critical" and "DS_POOL_SATURATED" in latest.get("addedCodes", []),
                  f"the newest transition is {short(latest)}, expected one to critical adding DS_POOL_SATURATED")
            windows = sorted(u["windowSecs"] for u in got["uptime"])
            check(windows == [3600, 86400] and all(u["subsystem"] == "datasources" for u in got["uptime"]),
                  f"uptime {short(got['uptime'])}")
            shares = got["uptime"][0]["healthy"] + got["uptime"][0]["warning"] + got["uptime"][0]["critical"]
            check(abs(shares - 1) < 1e-6, f"uptime shares add up to {shares}")
            return f"= GET /v1/history: {len(got['transitions'])} transitions, newest {latest['from']} -> critical"
        await self.step(f"{HISTORY} after the push", history)

        async def bad_since():
            try:
                result = await session.call_tool(HISTORY, {"since": "yesterday"})
            except MCPError as error:
                check(error.code == INVALID_PARAMS and "since" in error.message,
                      f"JSON-RPC error {error.code} ({error.message})")
                return f"JSON-RPC error {error.code}: {error.message}"
            raise Failed(f"no error: {short(result.structured_content)}")
        await self.step(f'{HISTORY} since "yesterday" is an error naming since', bad_since)

    # -- the transports

    async def over_http(self, era):
        url = f"{self.base}/mcp"
        self.session_ids, self.sent_ids = set(), []

        async def on_request(request):
            if "mcp-session-id" in request.headers:
                self.sent_ids.append(request.headers["mcp-session-id"])

        async def on_response(response):
            if response.request.method == "POST" and "mcp-session-id" in response.headers:
                self.session_ids.add(response.headers["mcp-session-id"])

        # The SDK's own client has these timeouts (an SSE stream may stay quiet for long).
        client = httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=300),
                                    event_hooks={"request": [on_request], "response": [on_response]})
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(client)
            # The session is ended below, by hand, to see how.
            read, write = await stack.enter_async_context(
                streamable_http_client(url, http_client=client, terminate_on_close=False))
            session = await stack.enter_async_context(
                ClientSession(read, write, read_timeout_seconds=15, message_handler=self.on_message))
            await self.checks(session, "http", era)
        if era == MODERN:
            return

        async def stateful():
            check(len(self.session_ids) == 1, f"Mcp-Session-Id values answered: {sorted(self.session_ids)}")
            check(self.sent_ids and set(self.sent_ids) == self.session_ids,
                  f"requests carried {sorted(set(self.sent_ids))}, the server gave {sorted(self.session_ids)}")
            return f"{len(self.sent_ids)} requests in one session"
        if not await self.step("one stateful session (Mcp-Session-Id)", stateful):
            return

        session_id = next(iter(self.session_ids))
        headers = {"Mcp-Session-Id": session_id, "MCP-Protocol-Version": era}

        async def terminated():
            deleted = await anyio.to_thread.run_sync(raw, url, "DELETE", headers)
            check(deleted[0] in (200, 202, 204), f"DELETE with the session's id: {deleted[0]} {deleted[1]!r}")
            listed = await anyio.to_thread.run_sync(raw, url, "POST", headers, TOOLS_LIST)
            check(listed[0] == 404, f"a request of the ended session: {listed[0]} {listed[1]!r}, expected 404")
            return f"DELETE {deleted[0]}, then 404"
        await self.step("DELETE ends the session", terminated)

        async def foreign_origin():
            answer = await anyio.to_thread.run_sync(raw, url, "POST", {"Origin": "http://evil.example"},
                                                    INITIALIZE)
            check(answer[0] == 403, f"initialize from Origin http://evil.example: {answer[0]} {answer[1]!r}")
            return "403"
        await self.step("a foreign Origin is refused", foreign_origin)

    async def over_stdio(self, era):
        server = StdioServerParameters(command=self.args.bin, args=["mcp", "--addr", self.args.grpc])
        with open(os.path.join(self.args.logs, f"mcp-stdio-{era}.log"), "w") as errlog:
            async with AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(stdio_client(server, errlog=errlog))
                session = await stack.enter_async_context(
                    ClientSession(read, write, read_timeout_seconds=15, message_handler=self.on_message))
                await self.checks(session, "stdio", era)

    async def transport(self, label, connect, era, title):
        self.label = f"{label} {era}"
        self.updates, self.updated, self.stream_errors = [], anyio.Event(), []
        print(f"--- {title}, protocol {era}", flush=True)
        await self.settle(self.args.healthy, "healthy")
        try:
            with anyio.fail_after(300):
                await connect(era)
        except Exception as error:  # the transport tore the session down, or it hung
            self.failed += 1
            errors = getattr(error, "exceptions", None) or [error]
            print(f"FAIL  {self.label}: the session ended: "
                  + "; ".join(f"{type(e).__name__}: {e}" for e in errors), flush=True)


TOOLS_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": LEGACY, "capabilities": {},
                         "clientInfo": {"name": "healthscore-ci", "version": "0"}}}


def raw(url, method, headers, body=None):
    """One plain HTTP request to /mcp: (status, the start of the body)."""
    headers = {"Accept": "application/json, text/event-stream", **headers}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(200)
    except urllib.error.HTTPError as error:
        return error.code, error.read(200)


async def main(args):
    run = Run(args)
    for era in (LEGACY, MODERN):
        await run.transport("http", run.over_http, era, f"streamable HTTP: {run.base}/mcp")
        await run.transport("stdio", run.over_stdio, era, f"stdio: {args.bin} mcp --addr {args.grpc}")
    print(f"{run.passed} passed, {run.failed} failed", flush=True)
    return 1 if run.failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http", required=True, help="the HTTP listener, http://host:port")
    parser.add_argument("--grpc", required=True, help="the gRPC address, host:port")
    parser.add_argument("--bin", required=True, help="the healthscore binary")
    parser.add_argument("--healthy", required=True, help="snapshot file: the pool of app-1 healthy")
    parser.add_argument("--critical", required=True, help="snapshot file: the pool of app-1 saturated")
    parser.add_argument("--logs", required=True, help="directory for the stdio server's stderr")
    sys.exit(anyio.run(main, parser.parse_args()))
