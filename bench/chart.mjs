// Renders the benchmark's ratios as an SVG bar chart: one bar per target, the target
// as a tick, green when met. No dependencies: a few rectangles and text.
export function renderChart(results) {
  const rows = results.targets.filter((t) => t.ratio != null)
  const width = 860
  const rowHeight = 34
  const left = 330
  const top = 50
  const scaleMax = Math.max(1.2, ...rows.map((r) => Math.max(r.ratio, r.target ?? 0))) * 1.1
  const x = (v) => left + (v / scaleMax) * (width - left - 190)
  const height = top + rows.length * rowHeight + 40
  const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;')
  const bars = rows
    .map((r, i) => {
      const y = top + i * rowHeight
      const color = r.met == null ? '#8a8f98' : r.met ? '#2e9e5b' : '#d0483e'
      const tick = r.target == null ? '' : `<line x1="${x(r.target)}" x2="${x(r.target)}" y1="${y + 1}" y2="${y + 27}" stroke="#222" stroke-width="2"/>`
      const label = r.target == null ? `${r.ratio}× (no target)` : `${r.ratio}× (target ${r.better === 'higher' ? '≥' : '≤'} ${r.target})`
      return [
        `<text x="${left - 8}" y="${y + 17}" text-anchor="end" font-size="12">${esc(r.what)}</text>`,
        `<rect x="${left}" y="${y + 5}" width="${x(r.ratio) - left}" height="18" fill="${color}"/>`,
        tick,
        `<text x="${x(Math.max(r.ratio, r.target ?? 0)) + 6}" y="${y + 18}" font-size="12">${label}</text>`,
      ].join('')
    })
    .join('\n')
  const one = `<line x1="${x(1)}" x2="${x(1)}" y1="${top - 6}" y2="${height - 30}" stroke="#999" stroke-dasharray="4 3"/><text x="${x(1)}" y="${height - 16}" font-size="11" text-anchor="middle">1.0×</text>`
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="12" y="24" font-size="15" font-weight="bold">vitest-pool-rootless: measured ratio vs target (lower is better, except where the target says ≥)</text>
<text x="12" y="40" font-size="11" fill="#555">${esc(`${results.machine.cpus} CPUs, kernel ${results.machine.kernel}, node ${results.machine.node}, uid ${results.user.uid} (${results.user.idMap} id map)`)}</text>
${one}
${bars}
</svg>
`
}
