// Command healthprobe is one grpc.health.v1 Check over grpc-go, with grpc-health-probe's flag
// names and exit codes: it shows a Go client reaching healthscore over TLS (and mTLS) with a
// bearer token from $HEALTHSCORE_TOKEN, and .ci/tls.sh runs it against a real server.
//
//	healthprobe -addr 127.0.0.1:50051 -tls -tls-ca-cert ca.crt -tls-server-name localhost
//
// Exit codes: 0 serving, 1 bad flags, 2 connection failure, 3 RPC failure, 4 not serving.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// bearer sends `authorization: Bearer TOKEN` with every call, over TLS only.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }

func fail(code int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(code)
}

func main() {
	addr := flag.String("addr", "", "server address, host:port")
	service := flag.String("service", "", "grpc.health.v1 service name")
	useTLS := flag.Bool("tls", false, "use TLS")
	caCert := flag.String("tls-ca-cert", "", "PEM CA certificates to verify the server with")
	clientCert := flag.String("tls-client-cert", "", "PEM client certificate (mTLS)")
	clientKey := flag.String("tls-client-key", "", "PEM key of -tls-client-cert")
	serverName := flag.String("tls-server-name", "", "the name to verify the server certificate against")
	timeout := flag.Duration("connect-timeout", 2*time.Second, "how long to wait for the connection")
	flag.Parse()
	if *addr == "" {
		fail(1, "error: -addr is required")
	}

	var options []grpc.DialOption
	if *useTLS {
		config := &tls.Config{ServerName: *serverName}
		if *caCert != "" {
			pem, err := os.ReadFile(*caCert)
			if err != nil {
				fail(1, "error: -tls-ca-cert: %v", err)
			}
			config.RootCAs = x509.NewCertPool()
			if !config.RootCAs.AppendCertsFromPEM(pem) {
				fail(1, "error: -tls-ca-cert: no PEM certificate in %s", *caCert)
			}
		}
		if *clientCert != "" {
			pair, err := tls.LoadX509KeyPair(*clientCert, *clientKey)
			if err != nil {
				fail(1, "error: -tls-client-cert/-tls-client-key: %v", err)
			}
			config.Certificates = []tls.Certificate{pair}
		}
		options = append(options, grpc.WithTransportCredentials(credentials.NewTLS(config)))
		if token := os.Getenv("HEALTHSCORE_TOKEN"); token != "" {
			options = append(options, grpc.WithPerRPCCredentials(bearer(token)))
		}
	} else {
		options = append(options, grpc.WithInsecure())
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	conn, err := grpc.DialContext(ctx, *addr, append(options, grpc.WithBlock())...)
	if err != nil {
		fail(2, "error: failed to connect service at %q: %v", *addr, err)
	}
	defer conn.Close()
	response, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: *service})
	if err != nil {
		fail(3, "error: health rpc failed: %v", err)
	}
	if response.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		fail(4, "service unhealthy (responded with %q)", response.GetStatus().String())
	}
	fmt.Printf("status: %v\n", response.GetStatus())
}
