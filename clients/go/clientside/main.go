// Command clientside calls healthscore through grpc-go's client-side health checking: the
// channel watches a grpc.health.v1 name (healthCheckConfig.serviceName) and sends calls only
// to backends that report SERVING. It makes one GetSystemHealth call every 20 ms for a while and
// prints how many succeeded and how many failed, so .ci/clients.sh can show that a blip inside
// health.fail_after keeps the backend in rotation and a lasting failure takes it out.
//
//	clientside -addr 127.0.0.1:50051 -service "" -for 5s [-wait-ready]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc"
	// Registers the client-side health checking function the service config turns on.
	_ "google.golang.org/grpc/health"

	healthscorev1 "github.com/healthscore/healthscore/clients/go/healthscore/v1"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "server address, host:port")
	service := flag.String("service", "", "the grpc.health.v1 name the channel watches")
	duration := flag.Duration("for", 5*time.Second, "how long to keep calling")
	waitReady := flag.Bool("wait-ready", false, "wait until the backend serves before counting")
	flag.Parse()

	config := fmt.Sprintf(`{"loadBalancingConfig": [{"round_robin": {}}],
		"healthCheckConfig": {"serviceName": %q}}`, *service)
	// grpc.WithInsecure: grpc-go 1.33 (Debian 12's) has no credentials/insecure yet.
	conn, err := grpc.Dial(*addr, grpc.WithInsecure(), grpc.WithDefaultServiceConfig(config))
	if err != nil {
		log.Fatalf("dial %s: %v", *addr, err)
	}
	defer conn.Close()
	client := healthscorev1.NewHealthReportsClient(conn)
	call := func(options ...grpc.CallOption) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := client.GetSystemHealth(ctx, &healthscorev1.GetSystemHealthRequest{}, options...)
		return err
	}
	if *waitReady {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := client.GetSystemHealth(ctx, &healthscorev1.GetSystemHealthRequest{}, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			log.Fatalf("the backend never became ready: %v", err)
		}
	}
	ok, failed := 0, 0
	var last error
	for end := time.Now().Add(*duration); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if err := call(); err != nil {
			failed++
			last = err
		} else {
			ok++
		}
	}
	fmt.Printf("ok=%d failed=%d\n", ok, failed)
	if last != nil {
		fmt.Printf("last error: %v\n", last)
	}
}
