package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// topWindow is how far back fn top's figures reach once it has run that long.
const topWindow = time.Minute

func newTopCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	var cf clusterFlags
	var out outputFlag
	var interval time.Duration
	var all bool
	c := &cobra.Command{
		Use:   "top [NAME]",
		Short: "Show each function's traffic: requests/s, errors, latency, in flight, replicas, cold starts",
		Long: `Show, per function, what the gateway measured over the last minute (or since fn top began):
requests per second, the share of 5xx answers, p50 and p99 latency, requests in flight and held,
ready and desired replicas, and cold starts. On a terminal it refreshes in place every
--interval until Ctrl-C; with -o json it prints one snapshot taken over --interval.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			if interval < 100*time.Millisecond {
				return &UsageError{fmt.Errorf("--interval %s: want 100ms or more", interval)}
			}
			cl, err := fa.Connect(&cf)
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			ns := cl.namespace
			if all {
				ns = ""
			}
			ctx := ctxOf(c)
			scrape := gatewayScraper(cl)
			first, err := scrape(ctx)
			if err != nil {
				return err
			}
			if out.json() {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(interval):
				}
				last, err := scrape(ctx)
				if err != nil {
					return err
				}
				return printJSON(s.Out, topRows(first, last, ns, name))
			}
			tty := false
			if f, ok := s.Out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				tty = true
			}
			snaps := []*topSnapshot{first}
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(interval):
				}
				snap, err := scrape(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				snaps = append(snaps, snap)
				for len(snaps) > 2 && snap.at.Sub(snaps[1].at) >= topWindow {
					snaps = snaps[1:]
				}
				if tty {
					fmt.Fprint(s.Out, "\x1b[H\x1b[2J")
				} else {
					fmt.Fprintln(s.Out)
				}
				if err := printTop(s.Out, topRows(snaps[0], snap, ns, name), all); err != nil {
					return err
				}
			}
		},
	}
	cf.add(c)
	cf.complete(c, fa, true)
	out.add(c)
	c.Flags().DurationVar(&interval, "interval", 2*time.Second, "time between refreshes (with -o json: the span of the one snapshot)")
	c.Flags().BoolVarP(&all, "all-namespaces", "A", false, "the functions of every namespace")
	return c
}

// topKey names a function in the gateway's metrics.
type topKey struct{ ns, name string }

// topStats are one function's figures in one scrape, summed over the gateway's replicas.
type topStats struct {
	requests, errors, cold float64
	buckets                map[float64]float64 // le -> cumulative count of request durations
	inFlight, held         float64
	ready, desired         float64
}

type topSnapshot struct {
	at  time.Time
	fns map[topKey]*topStats
}

// gatewayScraper reads the gateway's /_gw/metrics: the local platform's gateway, or every
// fn-gateway pod of a cluster through the API server's proxy.
func gatewayScraper(cl *cluster) func(context.Context) (*topSnapshot, error) {
	return func(ctx context.Context) (*topSnapshot, error) {
		snap := &topSnapshot{at: time.Now(), fns: map[topKey]*topStats{}}
		if cl.local != nil && cl.local.GatewayMetrics != "" { // else its gateways are pods
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cl.local.GatewayMetrics, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return nil, fmt.Errorf("reading the gateway's metrics: %w", unwrapURLError(err))
			}
			defer resp.Body.Close()
			return snap, snap.add(resp.Body)
		}
		pods, err := cl.kube.CoreV1().Pods("fn-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=fn-gateway"})
		if err != nil {
			return nil, fmt.Errorf("listing the gateway's pods: %w", err)
		}
		if len(pods.Items) == 0 {
			return nil, fmt.Errorf("no fn-gateway pods in namespace fn-system: is fn installed?")
		}
		for _, p := range pods.Items {
			b, err := cl.kube.CoreV1().Pods(p.Namespace).ProxyGet("http", p.Name, "9090", "/_gw/metrics", nil).DoRaw(ctx)
			if err != nil {
				return nil, fmt.Errorf("reading the metrics of gateway pod %s: %w", p.Name, err)
			}
			if err := snap.add(strings.NewReader(string(b))); err != nil {
				return nil, err
			}
		}
		return snap, nil
	}
}

// add sums one gateway's metrics into the snapshot.
func (s *topSnapshot) add(r io.Reader) error {
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return fmt.Errorf("reading the gateway's metrics: %w", err)
	}
	for name, fam := range families {
		for _, m := range fam.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			k := topKey{labels["namespace"], labels["function"]}
			if k.name == "" {
				continue
			}
			st := s.fns[k]
			if st == nil {
				st = &topStats{buckets: map[float64]float64{}}
				s.fns[k] = st
			}
			switch name {
			case "fn_gateway_requests_total":
				v := m.GetCounter().GetValue()
				st.requests += v
				if code, _ := strconv.Atoi(labels["code"]); code >= 500 {
					st.errors += v
				}
			case "fn_gateway_request_duration_seconds":
				for _, b := range m.GetHistogram().GetBucket() {
					st.buckets[b.GetUpperBound()] += float64(b.GetCumulativeCount())
				}
			case "fn_gateway_cold_start_seconds":
				st.cold += float64(m.GetHistogram().GetSampleCount())
			case "fn_gateway_requests_in_flight":
				st.inFlight += m.GetGauge().GetValue()
			case "fn_gateway_requests_held":
				st.held += m.GetGauge().GetValue()
			case "fn_gateway_ready_endpoints":
				st.ready = math.Max(st.ready, m.GetGauge().GetValue())
			case "fn_gateway_desired_replicas":
				st.desired = math.Max(st.desired, m.GetGauge().GetValue())
			}
		}
	}
	return nil
}

// topRow is one function's line of fn top, and its -o json.
type topRow struct {
	Namespace     string  `json:"namespace"`
	Name          string  `json:"name"`
	WindowSeconds float64 `json:"windowSeconds"`
	Requests      float64 `json:"requests"`
	RPS           float64 `json:"rps"`
	ErrorRate     float64 `json:"errorRate"`
	P50Ms         float64 `json:"p50Ms"`
	P99Ms         float64 `json:"p99Ms"`
	InFlight      float64 `json:"inFlight"`
	Held          float64 `json:"held"`
	Ready         float64 `json:"readyReplicas"`
	Desired       float64 `json:"desiredReplicas"`
	ColdStarts    float64 `json:"coldStarts"`
}

// topRows are the figures between two scrapes, for namespace ns ("" for all) and name ("" for all).
func topRows(from, to *topSnapshot, ns, name string) []topRow {
	span := to.at.Sub(from.at).Seconds()
	rows := []topRow{}
	for k, now := range to.fns {
		if ns != "" && k.ns != ns || name != "" && k.name != name {
			continue
		}
		before := from.fns[k]
		if before == nil {
			before = &topStats{buckets: map[float64]float64{}}
		}
		r := topRow{Namespace: k.ns, Name: k.name, WindowSeconds: math.Round(span*10) / 10,
			Requests: now.requests - before.requests, InFlight: now.inFlight, Held: now.held,
			Ready: now.ready, Desired: now.desired, ColdStarts: now.cold - before.cold}
		if span > 0 {
			r.RPS = r.Requests / span
		}
		if r.Requests > 0 {
			r.ErrorRate = (now.errors - before.errors) / r.Requests
		}
		delta := map[float64]float64{}
		for le, c := range now.buckets {
			delta[le] = c - before.buckets[le]
		}
		r.P50Ms = quantile(0.5, delta) * 1000
		r.P99Ms = quantile(0.99, delta) * 1000
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool {
		return rows[i].Namespace < rows[j].Namespace || rows[i].Namespace == rows[j].Namespace && rows[i].Name < rows[j].Name
	})
	return rows
}

// quantile estimates the q-quantile of a histogram's cumulative buckets (le -> count) as
// Prometheus's histogram_quantile does: linearly within the bucket the rank falls in.
func quantile(q float64, buckets map[float64]float64) float64 {
	les := make([]float64, 0, len(buckets))
	for le := range buckets {
		les = append(les, le)
	}
	sort.Float64s(les)
	if len(les) == 0 {
		return 0
	}
	total := buckets[les[len(les)-1]]
	if total <= 0 {
		return 0
	}
	rank := q * total
	prevLE, prevCount := 0.0, 0.0
	for _, le := range les {
		c := buckets[le]
		if c >= rank {
			if math.IsInf(le, 1) {
				return prevLE // beyond the last bound: the last bound is all that is known
			}
			if c == prevCount {
				return le
			}
			return prevLE + (le-prevLE)*(rank-prevCount)/(c-prevCount)
		}
		prevLE, prevCount = le, c
	}
	return prevLE
}

func printTop(w io.Writer, rows []topRow, all bool) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	cols := "NAME\tRPS\tERRORS\tP50\tP99\tIN FLIGHT\tHELD\tREPLICAS\tCOLD STARTS\tWINDOW"
	if all {
		cols = "NAMESPACE\t" + cols
	}
	fmt.Fprintln(tw, cols)
	for _, r := range rows {
		line := fmt.Sprintf("%s\t%.1f\t%.1f%%\t%s\t%s\t%.0f\t%.0f\t%.0f/%.0f\t%.0f\t%.0fs", r.Name, r.RPS, r.ErrorRate*100,
			ms(r.P50Ms, r.Requests), ms(r.P99Ms, r.Requests), r.InFlight, r.Held, r.Ready, r.Desired, r.ColdStarts, r.WindowSeconds)
		if all {
			line = r.Namespace + "\t" + line
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

func ms(v, n float64) string {
	if n == 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + "ms"
}
