package httpd

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the Prometheus metrics served on the admin listener's
// /metrics. They live in their own registry (no global state).
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	transfers *prometheus.CounterVec
	bytes     *prometheus.CounterVec
	errors    *prometheus.CounterVec
	mail      *prometheus.CounterVec
}

// NewMetrics creates the registry and metrics; auditAppends reports the
// number of audit records appended since start.
func NewMetrics(auditAppends func() float64) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_http_requests_total", Help: "HTTP requests served, by listener and status class.",
		}, []string{"listener", "code"}),
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_transfers_total", Help: "File transfers finished, by direction (in, out).",
		}, []string{"direction"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_transfer_bytes_total", Help: "File content bytes transferred, by direction (in, out).",
		}, []string{"direction"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_errors_total", Help: "Requests that failed, by error kind.",
		}, []string{"kind"}),
		mail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_mail_total", Help: "Mail outbox events on this node, by result: queued, sent, retry, failed (docs/MAIL.md).",
		}, []string{"result"}),
	}
	m.reg.MustRegister(m.requests, m.transfers, m.bytes, m.errors, m.mail,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ferry_audit_appends_total", Help: "Audit records appended since start."}, auditAppends),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Transfer counts one finished transfer; it fits transfer.Metrics.
func (m *Metrics) Transfer(direction string, n int64) {
	m.transfers.WithLabelValues(direction).Inc()
	m.bytes.WithLabelValues(direction).Add(float64(n))
}

// Mail counts one mail outbox event; it fits mail.Config.OnResult. The
// kind of mail is not a label (it would multiply the series for little).
func (m *Metrics) Mail(kind, result string) {
	m.mail.WithLabelValues(result).Inc()
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
