package main

import (
	"image"
	"image/color"
)

// plotGlyphs is a 3×5 pixel font for the plot's labels: digits and the few letters they use.
// Characters outside it are drawn as blanks.
var plotGlyphs = map[rune][5]string{
	'0': {"###", "#.#", "#.#", "#.#", "###"},
	'1': {".#.", "##.", ".#.", ".#.", "###"},
	'2': {"###", "..#", "###", "#..", "###"},
	'3': {"###", "..#", "###", "..#", "###"},
	'4': {"#.#", "#.#", "###", "..#", "..#"},
	'5': {"###", "#..", "###", "..#", "###"},
	'6': {"###", "#..", "###", "#.#", "###"},
	'7': {"###", "..#", "..#", "..#", "..#"},
	'8': {"###", "#.#", "###", "#.#", "###"},
	'9': {"###", "#.#", "###", "..#", "###"},
	'.': {"...", "...", "...", "...", ".#."},
	'-': {"...", "...", "###", "...", "..."},
	'/': {"..#", "..#", ".#.", "#..", "#.."},
	'K': {"#.#", "##.", "#..", "##.", "#.#"},
	'M': {"#.#", "###", "###", "#.#", "#.#"},
	'S': {"###", "#..", "###", "..#", "###"},
	'E': {"###", "#..", "##.", "#..", "###"},
	'e': {"###", "#..", "##.", "#..", "###"},
}

// plotScale is how many pixels wide and high one font pixel is drawn.
const plotScale = 2

// drawText draws s with its top-left corner at (x, y).
func drawText(img *image.RGBA, x, y int, s string, c color.RGBA) {
	for _, r := range s {
		g := plotGlyphs[r]
		for row, line := range g {
			for col, px := range line {
				if px == '#' {
					x0, y0 := x+col*plotScale, y+row*plotScale
					fillRect(img, image.Rect(x0, y0, x0+plotScale, y0+plotScale), c)
				}
			}
		}
		x += 4 * plotScale
	}
}
