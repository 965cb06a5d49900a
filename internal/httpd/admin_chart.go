package httpd

import (
	"strconv"

	"ferry.dev/ferry/internal/admin"
)

// Charts for the admin dashboard, drawn on the server as inline SVG by the
// templates in web/admin/charts.html: no chart script, and no style
// attributes (colours and text alignment come from CSS classes in
// admin.css), so the page CSP stays strict. This file only computes
// geometry; the template engine escapes every label.

// series is one row of values of a bar chart, drawn with CSS class Class.
type series struct {
	Class, Name string
	Values      []int64
}

type svgBar struct {
	X, Y, W, H   int
	Class, Title string
}

type svgText struct {
	X, Y        int
	Class, Text string
}

type svgLine struct{ X1, Y1, X2, Y2 int }

type legendItem struct {
	X, Y        int
	Class, Name string
}

// barChart is a vertical grouped bar chart: one group per label, one bar
// per series.
type barChart struct {
	Title  string
	W, H   int
	Bars   []svgBar
	Texts  []svgText
	Grid   []svgLine
	Legend []legendItem
	Empty  bool // every value is zero
}

const (
	chartW      = 720
	chartH      = 240
	chartLeft   = 80
	chartRight  = 10
	chartTop    = 28
	chartBottom = 30
)

func newBarChart(title string, labels []string, format func(int64) string, ss ...series) *barChart {
	c := &barChart{Title: title, W: chartW, H: chartH}
	var max int64
	for _, s := range ss {
		for _, v := range s.Values {
			max = maxInt64(max, v)
		}
	}
	c.Empty = max == 0
	if max < 2 {
		max = 2 // so that the middle grid line is a whole number too
	} else if max%2 == 1 {
		max++
	}
	plotW, plotH := chartW-chartLeft-chartRight, chartH-chartTop-chartBottom
	base := chartTop + plotH
	for i := 0; i <= 2; i++ { // grid lines and y labels at 0, max/2, max
		y := base - plotH*i/2
		c.Grid = append(c.Grid, svgLine{chartLeft, y, chartW - chartRight, y})
		c.Texts = append(c.Texts, svgText{chartLeft - 6, y + 4, "ylabel", format(max * int64(i) / 2)})
	}
	n := len(labels)
	if n == 0 {
		return c
	}
	group := plotW / n
	barW := maxInt(1, group*8/10/maxInt(1, len(ss)))
	step := (n + 9) / 10 // at most about ten x labels
	for i, l := range labels {
		gx := chartLeft + group*i + group/10
		for j, s := range ss {
			v := s.Values[i]
			h := int(int64(plotH) * v / max)
			if v > 0 && h == 0 {
				h = 1
			}
			c.Bars = append(c.Bars, svgBar{X: gx + barW*j, Y: base - h, W: barW, H: h, Class: s.Class, Title: l + ": " + s.Name + " " + format(v)})
		}
		if i%step == 0 {
			c.Texts = append(c.Texts, svgText{chartLeft + group*i + group/2, chartH - 10, "xlabel", l})
		}
	}
	for j, s := range ss {
		c.Legend = append(c.Legend, legendItem{X: chartLeft + 150*j, Y: 8, Class: s.Class, Name: s.Name})
	}
	return c
}

// hbarChart is a horizontal chart of bytes in and out per name, the in
// and out bars side by side on one row.
type hbarChart struct {
	Title  string
	W, H   int
	Bars   []svgBar
	Texts  []svgText
	Legend []legendItem
	Empty  bool
}

const (
	hbarLabelW = 200
	hbarRow    = 24
)

func newHBarChart(title string, rows []admin.NamedTraffic) *hbarChart {
	if len(rows) > 15 {
		rows = rows[:15]
	}
	c := &hbarChart{Title: title, W: chartW, H: chartTop + hbarRow*len(rows) + 8, Empty: len(rows) == 0}
	var max int64 = 1
	for _, r := range rows {
		max = maxInt64(max, r.BytesIn+r.BytesOut)
	}
	plotW := chartW - hbarLabelW - 110
	for i, r := range rows {
		y := chartTop + hbarRow*i
		c.Texts = append(c.Texts, svgText{hbarLabelW - 8, y + 15, "ylabel", clipLabel(r.Name)})
		wIn := int(int64(plotW) * r.BytesIn / max)
		wOut := int(int64(plotW) * r.BytesOut / max)
		c.Bars = append(c.Bars,
			svgBar{X: hbarLabelW, Y: y + 3, W: wIn, H: hbarRow - 6, Class: "in", Title: r.Name + ": in " + humanSize(r.BytesIn) + ", " + strconv.FormatInt(r.FilesIn, 10) + " files"},
			svgBar{X: hbarLabelW + wIn, Y: y + 3, W: wOut, H: hbarRow - 6, Class: "out", Title: r.Name + ": out " + humanSize(r.BytesOut) + ", " + strconv.FormatInt(r.FilesOut, 10) + " files"})
		c.Texts = append(c.Texts, svgText{hbarLabelW + wIn + wOut + 6, y + 15, "value", humanSize(r.BytesIn + r.BytesOut)})
	}
	c.Legend = []legendItem{{X: hbarLabelW, Y: 8, Class: "in", Name: "in"}, {X: hbarLabelW + 150, Y: 8, Class: "out", Name: "out"}}
	return c
}

func clipLabel(s string) string {
	r := []rune(s)
	if len(r) > 28 {
		return string(r[:27]) + "…"
	}
	return s
}

func maxInt64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}
