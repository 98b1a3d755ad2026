// Command clientside calls healthscore through grpc-go's client-side health checking: the
// channel watches a grpc.health.v1 name (healthCheckConfig.serviceName) on every backend and
// sends calls only to those that report SERVING. It makes one GetSystemHealth call every 20 ms
// for a while and prints how many succeeded, how many failed, and which backend answered each,
// so .ci/clients.sh and .ci/fleet.sh can show which backends stayed in rotation. With -watch it
// also follows grpc.health.v1 Watch on each backend and prints every status it was sent.
//
//	clientside -addr 127.0.0.1:50051[,127.0.0.1:50052...] -service "" -for 5s [-wait-ready] [-watch]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	// Registers the client-side health checking function the service config turns on.
	_ "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	healthscorev1 "github.com/healthscore/healthscore/clients/go/healthscore/v1"
)

func main() {
	addrs := flag.String("addr", "127.0.0.1:50051", "backend addresses, host:port, comma-separated")
	service := flag.String("service", "", "the grpc.health.v1 name the channel watches")
	duration := flag.Duration("for", 5*time.Second, "how long to keep calling")
	waitReady := flag.Bool("wait-ready", false, "wait until a backend serves before counting")
	watch := flag.Bool("watch", false, "follow grpc.health.v1 Watch on each backend and print what it sent")
	flag.Parse()
	backends := strings.Split(*addrs, ",")

	// Every backend behind one channel, as a mesh or a headless Service would give them.
	r := manual.NewBuilderWithScheme("fleet")
	state := resolver.State{}
	for _, addr := range backends {
		state.Addresses = append(state.Addresses, resolver.Address{Addr: addr})
	}
	r.InitialState(state)
	config := fmt.Sprintf(`{"loadBalancingConfig": [{"round_robin": {}}],
		"healthCheckConfig": {"serviceName": %q}}`, *service)
	// grpc.WithInsecure: grpc-go 1.33 (Debian 12's) has no credentials/insecure yet.
	conn, err := grpc.Dial("fleet:///healthscore", grpc.WithInsecure(), grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(config))
	if err != nil {
		log.Fatalf("dial: %v", err)
	}
	defer conn.Close()

	// Each backend's statuses, written by its watcher before watchers.Wait returns.
	watched := make([][]string, len(backends))
	stop := make(chan struct{})
	var watchers sync.WaitGroup
	if *watch {
		for i, addr := range backends {
			watchers.Add(1)
			go follow(addr, *service, &watched[i], stop, &watchers)
		}
	}

	client := healthscorev1.NewHealthReportsClient(conn)
	if *waitReady {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := client.GetSystemHealth(ctx, &healthscorev1.GetSystemHealthRequest{}, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			log.Fatalf("no backend became ready: %v", err)
		}
	}
	ok, failed := 0, 0
	by := map[string]int{}
	var last error
	for end := time.Now().Add(*duration); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var p peer.Peer
		_, err := client.GetSystemHealth(ctx, &healthscorev1.GetSystemHealthRequest{}, grpc.Peer(&p))
		cancel()
		if err != nil {
			failed++
			last = err
			continue
		}
		ok++
		if p.Addr != nil {
			by[p.Addr.String()]++
		}
	}
	close(stop)
	watchers.Wait()

	fmt.Printf("ok=%d failed=%d\n", ok, failed)
	for _, addr := range backends {
		fmt.Printf("backend %s calls=%d\n", addr, by[addr])
	}
	if *watch {
		for i, addr := range backends {
			fmt.Printf("watch %s %s\n", addr, strings.Join(watched[i], ","))
		}
	}
	if last != nil {
		fmt.Printf("last error: %v\n", last)
	}
}

// follow records every status one backend's grpc.health.v1 Watch sends until stop closes.
func follow(addr, service string, seen *[]string, stop chan struct{}, done *sync.WaitGroup) {
	defer done.Done()
	conn, err := grpc.Dial(addr, grpc.WithInsecure())
	if err != nil {
		log.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-stop; cancel() }()
	stream, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		log.Fatalf("watch %s: %v", addr, err)
	}
	var statuses []string
	for {
		response, err := stream.Recv()
		if err != nil {
			break
		}
		statuses = append(statuses, response.GetStatus().String())
	}
	*seen = statuses
}
