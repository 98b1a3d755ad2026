// healthscore from Node: @grpc/grpc-js, with the contract loaded at run time by
// @grpc/proto-loader (no code generation). Pushes a snapshot of one connection pool
// (ReportMetrics), reads the system report (GetSystemHealth), follows WatchHealth until one
// change arrives, then leaves (ForgetSource).
//
//   npm ci && node example.js 127.0.0.1:50051
"use strict";

const path = require("node:path");
const { promisify } = require("node:util");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const SOURCE = "node-example";

// The file is named relative to the include dir, as service.proto's own imports are, so each
// file is loaded once and without a warning. `enums: String` gives "STATUS_CRITICAL" rather than
// 3; `longs: String` keeps 64-bit fields (revision, sequence) exact.
const definition = protoLoader.loadSync("healthscore/v1/service.proto", {
  includeDirs: [path.join(__dirname, "..", "..", "proto")],
  keepCase: true,
  enums: String,
  longs: String,
  defaults: true,
});
const { HealthReports } = grpc.loadPackageDefinition(definition).healthscore.v1;

// One line per report: revision, status, score and issue codes.
function describe(report) {
  const issues = report.issues.map((issue) => `${issue.code}(${issue.entity})`);
  return `rev ${report.revision} ${report.status} score ${report.score} [${issues.join(" ")}]`;
}

async function main(address) {
  const client = new HealthReports(address, grpc.credentials.createInsecure());
  const deadline = () => Date.now() + 10_000;
  const unary = (method, request) =>
    promisify(client[method].bind(client))(request, { deadline: deadline() });
  await promisify(client.waitForReady.bind(client))(deadline());

  // Pushes are ordered by (started_at, sequence): a restarted app sends a later started_at.
  const startedAt = { seconds: String(Math.floor(Date.now() / 1000)), nanos: 0 };
  const push = async (sequence, active) => {
    const response = await unary("ReportMetrics", {
      source: SOURCE,
      sequence: String(sequence),
      started_at: startedAt,
      ttl: { seconds: "60" },
      datasources: [{ name: "mainDB", active, max: 32 }],
    });
    console.log(`pushed ${response.entity_count} entities, applied=${response.applied}, ` +
      `system ${response.system_status}`);
  };

  await push(1, 20);
  const system = await unary("GetSystemHealth", { options: { omit_entities: true } });
  console.log("report:", describe(system.report));

  const watch = client.WatchHealth({}, { deadline: Date.now() + 30_000 });
  const messages = watch[Symbol.asyncIterator]();
  const nextReport = async () => {
    const { value, done } = await messages.next();
    if (done) throw new Error("WatchHealth ended before a change");
    return value.report;
  };
  console.log("watching:", describe(await nextReport())); // the current state comes first
  await push(2, 31); // 31 of 32 connections: saturated
  console.log("change:", describe(await nextReport()));
  watch.cancel(); // the iterator takes the resulting CANCELLED error

  await unary("ForgetSource", { source: SOURCE });
  client.close();
}

main(process.argv[2] || "127.0.0.1:50051").catch((error) => {
  console.error(`healthscore example: ${error.message}`);
  process.exitCode = 1;
});
