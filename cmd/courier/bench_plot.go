package main

import (
	"bufio"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"strconv"
)

// Plot geometry: two stacked charts, throughput above latency.
const (
	plotWidth   = 900
	plotHeight  = 560
	plotMargin  = 50 // left and bottom space for ticks and labels
	plotPadding = 16
)

var (
	plotBackground = color.RGBA{255, 255, 255, 255}
	plotAxis       = color.RGBA{40, 40, 40, 255}
	plotGrid       = color.RGBA{225, 225, 225, 255}
	plotSent       = color.RGBA{31, 119, 180, 255} // blue
	plotReceived   = color.RGBA{44, 160, 44, 255}  // green
	plotP50        = color.RGBA{255, 127, 14, 255} // orange
	plotP99        = color.RGBA{214, 39, 40, 255}  // red
)

// writePlotFile writes the plot of buckets to a PNG file.
func writePlotFile(name string, buckets []benchBucket) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	err = writePlot(w, buckets)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writePlot draws throughput (sent blue, received green, messages per second) above
// end-to-end latency (p50 orange, p99 red, milliseconds), one point per second of the run,
// and encodes it as PNG. The top of each y axis is labelled with its value.
func writePlot(w io.Writer, buckets []benchBucket) error {
	img := image.NewRGBA(image.Rect(0, 0, plotWidth, plotHeight))
	fillRect(img, img.Bounds(), plotBackground)
	half := plotHeight / 2
	top := image.Rect(plotMargin, plotPadding, plotWidth-plotPadding, half-plotPadding)
	bottom := image.Rect(plotMargin, half+plotPadding, plotWidth-plotPadding, plotHeight-plotMargin+plotPadding)
	sent, recv, p50, p99 := make([]float64, len(buckets)), make([]float64, len(buckets)), make([]float64, len(buckets)), make([]float64, len(buckets))
	for i, b := range buckets {
		sent[i], recv[i], p50[i], p99[i] = float64(b.Sent), float64(b.Received), b.P50ms, b.P99ms
	}
	drawChart(img, top, len(buckets), [][]float64{sent, recv}, []color.RGBA{plotSent, plotReceived}, "/S")
	drawChart(img, bottom, len(buckets), [][]float64{p50, p99}, []color.RGBA{plotP50, plotP99}, "MS")
	return png.Encode(w, img)
}

// drawChart draws axes, ticks, grid lines and the series (one value per second) in r.
func drawChart(img *image.RGBA, r image.Rectangle, n int, series [][]float64, colors []color.RGBA, unit string) {
	top := 0.0
	for _, s := range series {
		for _, v := range s {
			top = max(top, v)
		}
	}
	top = niceCeil(top)
	const yTicks = 5
	for i := 0; i <= yTicks; i++ {
		y := r.Max.Y - i*r.Dy()/yTicks
		fillRect(img, image.Rect(r.Min.X, y, r.Max.X, y+1), plotGrid)
		fillRect(img, image.Rect(r.Min.X-5, y, r.Min.X, y+1), plotAxis)
	}
	xStep := niceStep(n)
	for s := 0; s <= n; s += xStep {
		x := r.Min.X + s*r.Dx()/max(n, 1)
		fillRect(img, image.Rect(x, r.Max.Y, x+1, r.Max.Y+5), plotAxis)
		drawText(img, x-2, r.Max.Y+8, strconv.Itoa(s), plotAxis)
	}
	fillRect(img, image.Rect(r.Min.X, r.Min.Y, r.Min.X+1, r.Max.Y+1), plotAxis)
	fillRect(img, image.Rect(r.Min.X, r.Max.Y, r.Max.X, r.Max.Y+1), plotAxis)
	drawText(img, 4, r.Min.Y-3, formatTick(top), plotAxis)
	drawText(img, 4, r.Min.Y+9, unit, plotAxis)
	for i, s := range series {
		drawSeries(img, r, s, top, n, colors[i], 4-2*i) // the second on top of the first, thinner
	}
}

// drawSeries draws s as a polyline width pixels wide (each second's value at the middle of its
// second).
func drawSeries(img *image.RGBA, r image.Rectangle, s []float64, top float64, n int, c color.RGBA, width int) {
	if top <= 0 || n == 0 {
		return
	}
	point := func(i int) (int, int) {
		x := r.Min.X + int((float64(i)+0.5)*float64(r.Dx())/float64(n))
		y := r.Max.Y - int(s[i]/top*float64(r.Dy()))
		return x, y
	}
	for i := range s {
		x0, y0 := point(i)
		fillRect(img, image.Rect(x0-width/2-1, y0-width/2-1, x0+width/2+2, y0+width/2+2), c)
		if i > 0 {
			x1, y1 := point(i - 1)
			drawLine(img, x1, y1, x0, y0, c, width)
		}
	}
}

// drawLine draws a line width pixels wide from (x0, y0) to (x1, y1).
func drawLine(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA, width int) {
	steps := max(abs(x1-x0), abs(y1-y0), 1)
	for i := 0; i <= steps; i++ {
		x := x0 + (x1-x0)*i/steps
		y := y0 + (y1-y0)*i/steps
		fillRect(img, image.Rect(x-width/2, y-width/2, x+width-width/2, y+width-width/2), c)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func fillRect(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (1 for v ≤ 0).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// niceStep is the spacing of x ticks (seconds) that gives at most ten over n seconds.
func niceStep(n int) int {
	for _, s := range []int{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600} {
		if n/s <= 10 {
			return s
		}
	}
	return max(1, n/10)
}

// formatTick writes a y-axis value compactly: 2000 as 2K, 0.5 as 0.5.
func formatTick(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gK", v/1e3)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
