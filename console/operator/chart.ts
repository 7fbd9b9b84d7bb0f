/**
 * A small live line chart in SVG, drawn by hand: the last `capacity` values (100
 * polls: 5 minutes), scaled to the largest of them. Values are numbers only, so nothing a client sent
 * reaches the markup.
 */
import { niceCeiling } from "./scale.ts";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 300;
const HEIGHT = 80;

export class LineChart {
  private readonly values: number[] = [];
  private readonly line: SVGPolylineElement;
  private readonly area: SVGPolygonElement;
  private readonly top: SVGTextElement;
  private readonly box: HTMLElement;
  private readonly value: HTMLElement;
  private readonly format: (n: number) => string;
  private readonly capacity: number;

  /**
   * `box` receives the SVG; `value` shows the latest value, formatted. The chart's
   * `data-latest` and `data-points` attributes say what it shows (for tests).
   */
  constructor(box: HTMLElement, value: HTMLElement, format: (n: number) => string, capacity = 100) {
    this.box = box;
    this.value = value;
    this.format = format;
    this.capacity = capacity;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    this.area = document.createElementNS(SVG, "polygon");
    this.area.setAttribute("class", "area");
    this.line = document.createElementNS(SVG, "polyline");
    this.line.setAttribute("class", "line");
    this.top = document.createElementNS(SVG, "text");
    this.top.setAttribute("x", "2");
    this.top.setAttribute("y", "10");
    this.top.setAttribute("class", "scale");
    svg.append(this.area, this.line, this.top);
    box.replaceChildren(svg);
  }

  push(value: number): void {
    this.values.push(Number.isFinite(value) && value > 0 ? value : 0);
    if (this.values.length > this.capacity) this.values.shift();
    this.render();
  }

  private render(): void {
    const max = niceCeiling(Math.max(...this.values, 0));
    const step = WIDTH / Math.max(1, this.capacity - 1);
    // The newest value at the right edge.
    const offset = WIDTH - step * (this.values.length - 1);
    const points = this.values.map((v, i) => {
      const x = offset + i * step;
      const y = HEIGHT - (max === 0 ? 0 : (v / max) * (HEIGHT - 14));
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    this.line.setAttribute("points", points.join(" "));
    this.area.setAttribute("points", `${offset.toFixed(1)},${HEIGHT} ${points.join(" ")} ${WIDTH},${HEIGHT}`);
    this.top.textContent = this.format(max);
    const latest = this.values.at(-1) ?? 0;
    this.value.textContent = this.format(latest);
    this.box.dataset.latest = String(latest);
    this.box.dataset.points = String(this.values.length);
  }
}
