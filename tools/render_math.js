// Typeset the math that pymdownx.arithmatex marks (\(…\) inline, \[…\] displayed) with the bundled KaTeX, on every page
// Material shows (its instant navigation swaps pages without reloading them).
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [{left: "\\(", right: "\\)", display: false}, {left: "\\[", right: "\\]", display: true}],
    throwOnError: false,
  })
})
