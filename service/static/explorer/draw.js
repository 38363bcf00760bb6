// A beat drawn with a pointer (mouse, touch or pen), as 140 samples in raw units.

export const LENGTH = 140;

// Samples not drawn are linearly interpolated between the drawn ones on either side and
// held flat beyond the first and last; null when fewer than 2 samples were drawn.
export function fillGaps(samples) {
  const known = [];
  samples.forEach((v, i) => { if (v !== null && Number.isFinite(v)) known.push(i); });
  if (known.length < 2) return null;
  const out = new Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    if (i <= known[0]) out[i] = samples[known[0]];
    else if (i >= known[known.length - 1]) out[i] = samples[known[known.length - 1]];
    else {
      let k = 0;
      while (known[k + 1] < i) k++;
      const a = known[k], b = known[k + 1];
      out[i] = samples[a] + (samples[b] - samples[a]) * (i - a) / (b - a);
    }
  }
  return out;
}

// A canvas that records a stroke: x across the canvas is the sample index 0..139, y is
// the value from high (top) to low (bottom). Between two pointer events the samples
// passed over are filled in, so a fast stroke leaves no holes.
export class BeatPad {
  constructor(canvas, low, high, onChange) {
    this.canvas = canvas;
    this.low = low;
    this.high = high;
    this.onChange = onChange;
    this.samples = new Array(LENGTH).fill(null);
    this.last = null;
    this.cursor = null; // keyboard drawing: the sample the arrow keys change
    canvas.addEventListener("keydown", (e) => this.key(e));
    canvas.addEventListener("blur", () => { this.cursor = null; this.render(); });
    canvas.addEventListener("pointerdown", (e) => this.down(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    canvas.addEventListener("pointerup", (e) => this.up(e));
    canvas.addEventListener("pointercancel", (e) => this.up(e));
    this.render();
  }

  point(e) {
    const r = this.canvas.getBoundingClientRect();
    const fx = Math.min(1, Math.max(0, (e.clientX - r.left) / r.width));
    const fy = Math.min(1, Math.max(0, (e.clientY - r.top) / r.height));
    return { i: Math.round(fx * (LENGTH - 1)), v: this.high - fy * (this.high - this.low) };
  }

  record(p) {
    if (this.last && this.last.i !== p.i) {
      const step = p.i > this.last.i ? 1 : -1;
      for (let i = this.last.i; i !== p.i; i += step) {
        this.samples[i] = this.last.v + (p.v - this.last.v) * (i - this.last.i) / (p.i - this.last.i);
      }
    }
    this.samples[p.i] = p.v;
    this.last = p;
    this.render();
    this.onChange(fillGaps(this.samples));
  }

  down(e) {
    e.preventDefault();
    this.canvas.setPointerCapture(e.pointerId);
    this.last = null;
    this.record(this.point(e));
  }

  move(e) {
    if (!this.canvas.hasPointerCapture(e.pointerId)) return;
    for (const ev of e.getCoalescedEvents ? e.getCoalescedEvents() : [e]) this.record(this.point(ev));
  }

  up(e) {
    if (this.canvas.hasPointerCapture(e.pointerId)) this.canvas.releasePointerCapture(e.pointerId);
    this.last = null;
  }

  // Keyboard drawing: Left and Right move the cursor a sample (with Shift, ten), Up and
  // Down raise or lower the value under it by 2% of the range (with Shift, 10%), so the
  // first key press starts from a flat line at zero.
  key(e) {
    const moves = { ArrowLeft: -1, ArrowRight: 1 }, lifts = { ArrowUp: 1, ArrowDown: -1 };
    if (!(e.key in moves) && !(e.key in lifts)) return;
    e.preventDefault();
    if (this.cursor === null) this.cursor = 0;
    const filled = fillGaps(this.samples) || new Array(LENGTH).fill(Math.min(this.high, Math.max(this.low, 0)));
    if (e.key in moves) {
      this.cursor = Math.min(LENGTH - 1, Math.max(0, this.cursor + moves[e.key] * (e.shiftKey ? 10 : 1)));
      this.render();
      return;
    }
    const step = (this.high - this.low) * (e.shiftKey ? 0.1 : 0.02) * lifts[e.key];
    filled[this.cursor] = Math.min(this.high, Math.max(this.low, filled[this.cursor] + step));
    this.samples = filled;
    this.render();
    this.onChange(fillGaps(this.samples));
  }

  clear() {
    this.samples.fill(null);
    this.last = null;
    this.render();
    this.onChange(null);
  }

  render() {
    const ctx = this.canvas.getContext("2d");
    const { width, height } = this.canvas;
    ctx.clearRect(0, 0, width, height);
    ctx.strokeStyle = "#ccc";
    ctx.lineWidth = 1;
    const zero = (this.high / (this.high - this.low)) * height;
    ctx.beginPath(); ctx.moveTo(0, zero); ctx.lineTo(width, zero); ctx.stroke();
    if (this.cursor !== null) {
      const cx = (this.cursor / (LENGTH - 1)) * width;
      ctx.strokeStyle = "#e67e22";
      ctx.beginPath(); ctx.moveTo(cx, 0); ctx.lineTo(cx, height); ctx.stroke();
    }
    const filled = fillGaps(this.samples);
    if (!filled) return;
    ctx.strokeStyle = "#1f5fbf";
    ctx.lineWidth = 2;
    ctx.beginPath();
    filled.forEach((v, i) => {
      const x = (i / (LENGTH - 1)) * width, y = ((this.high - v) / (this.high - this.low)) * height;
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
}
