// Prometheus' own text parser (expfmt.TextParser, from Debian's
// golang-github-prometheus-common-dev) reading an exposition file ROUNDS times: the best
// round's nanoseconds per series. scripts/parser-vs-go.sh runs it beside healthscore's parser
// on the same file.
package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/common/expfmt"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: expfmt FILE ROUNDS")
		os.Exit(2)
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rounds, err := strconv.Atoi(os.Args[2])
	if err != nil || rounds < 1 {
		fmt.Fprintln(os.Stderr, "ROUNDS must be a positive number")
		os.Exit(2)
	}
	var best time.Duration
	series := 0
	for round := 0; round < rounds; round++ {
		var parser expfmt.TextParser
		began := time.Now()
		families, err := parser.TextToMetricFamilies(bytes.NewReader(data))
		took := time.Since(began)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if round == 0 || took < best {
			best = took
		}
		series = 0
		for _, family := range families {
			series += len(family.Metric)
		}
	}
	fmt.Printf("%.0f ns/series\n", float64(best.Nanoseconds())/float64(series))
}
