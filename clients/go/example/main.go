// Command example shows what an app does with healthscore through the generated client: it
// pushes a snapshot of one connection pool (ReportMetrics), reads the system report
// (GetSystemHealth), then follows WatchHealth until one change arrives and leaves
// (ForgetSource).
//
//	go run ./example 127.0.0.1:50051
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	healthscorev1 "github.com/healthscore/healthscore/clients/go/healthscore/v1"
)

const source = "go-example"

func main() {
	addr := "127.0.0.1:50051"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	if err := run(addr); err != nil {
		log.Fatal(err)
	}
}

func run(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// grpc.WithInsecure: grpc-go 1.33, the oldest this module supports (Debian 12's), has no
	// credentials/insecure yet.
	conn, err := grpc.DialContext(ctx, addr, grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		return fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer conn.Close()
	client := healthscorev1.NewHealthReportsClient(conn)

	// Pushes are ordered by (started_at, sequence): a restarted app sends a later started_at.
	startedAt := timestamppb.Now()
	push := func(sequence uint64, active uint32) error {
		response, err := client.ReportMetrics(ctx, &healthscorev1.ReportMetricsRequest{
			Source:    source,
			Sequence:  sequence,
			StartedAt: startedAt,
			Ttl:       durationpb.New(time.Minute),
			Datasources: []*healthscorev1.DatasourceSnapshot{
				{Name: "mainDB", Active: active, Max: 32},
			},
		})
		if err != nil {
			return fmt.Errorf("ReportMetrics: %w", err)
		}
		fmt.Printf("pushed %d entities, applied=%t, system %s\n",
			response.EntityCount, response.Applied, response.SystemStatus)
		return nil
	}

	if err := push(1, 20); err != nil {
		return err
	}
	system, err := client.GetSystemHealth(ctx, &healthscorev1.GetSystemHealthRequest{
		Options: &healthscorev1.ReportOptions{OmitEntities: true},
	})
	if err != nil {
		return fmt.Errorf("GetSystemHealth: %w", err)
	}
	fmt.Println("report:", describe(system.Report))

	watch, err := client.WatchHealth(ctx, &healthscorev1.WatchHealthRequest{})
	if err != nil {
		return fmt.Errorf("WatchHealth: %w", err)
	}
	current, err := watch.Recv() // the current state comes first
	if err != nil {
		return fmt.Errorf("WatchHealth: %w", err)
	}
	fmt.Println("watching:", describe(current.Report))
	if err := push(2, 31); err != nil { // 31 of 32 connections: saturated
		return err
	}
	change, err := watch.Recv()
	if err != nil {
		return fmt.Errorf("WatchHealth: %w", err)
	}
	fmt.Println("change:", describe(change.Report))

	if _, err := client.ForgetSource(ctx, &healthscorev1.ForgetSourceRequest{Source: source}); err != nil {
		return fmt.Errorf("ForgetSource: %w", err)
	}
	return nil
}

// describe renders a system report on one line: revision, status, score and issue codes.
func describe(report *healthscorev1.SystemHealthReport) string {
	codes := make([]string, 0, len(report.Issues))
	for _, issue := range report.Issues {
		codes = append(codes, issue.Code+"("+issue.Entity+")")
	}
	return fmt.Sprintf("rev %d %s score %d [%s]",
		report.Revision, report.Status, report.Score, strings.Join(codes, " "))
}
