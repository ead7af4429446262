import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];

export interface TimeChartProps {
  title: string;
  /** One label per y series; the x series is time in seconds. */
  labels: string[];
  data: uPlot.AlignedData;
  /** Formats a y value for the axis and the legend. */
  format?: (value: number) => string;
  /** Points only, no lines (events on a time axis rather than a series). */
  pointsOnly?: boolean;
  /** A vertical marker at this time (seconds). */
  marker?: number | null;
  /** Called with the time (seconds) under the cursor when the chart is clicked. */
  onPick?: (seconds: number) => void;
  testId?: string;
  height?: number;
}

/** A uPlot time-series chart; recreated when its series change, otherwise only fed new data. */
export function TimeChart(props: TimeChartProps) {
  const container = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  // The draw hook and click handler read the latest props without recreating the chart.
  const latest = useRef(props);
  latest.current = props;
  // uPlot created on empty data keeps its empty scales after setData: create it again once data comes.
  const hasData = (props.data[0]?.length ?? 0) > 0;
  const shape = `${props.labels.join('\u0000')}|${props.pointsOnly ? 1 : 0}|${props.title}|${hasData ? 1 : 0}`;

  useEffect(() => {
    const target = container.current;
    if (!target) return;
    const format = (value: number | null | undefined) =>
      value === null || value === undefined ? '–' : (latest.current.format ?? String)(value);
    const options: uPlot.Options = {
      title: props.title,
      width: Math.max(320, target.clientWidth || 640),
      height: props.height ?? 220,
      scales: { x: { time: true } },
      series: [
        {},
        ...props.labels.map((label, index) => ({
          label,
          stroke: PALETTE[index % PALETTE.length] as string,
          width: 2,
          value: (_u: uPlot, value: number | null) => format(value),
          ...(props.pointsOnly
            ? { paths: () => null, points: { show: true, size: 9, fill: PALETTE[index % PALETTE.length] as string } }
            : {}),
        })),
      ],
      axes: [{}, { values: (_u, values) => values.map((value) => format(value)), size: 70 }],
      hooks: {
        draw: [
          (u) => {
            const marker = latest.current.marker;
            if (marker === null || marker === undefined) return;
            const x = u.valToPos(marker, 'x', true);
            const context = u.ctx;
            context.save();
            context.strokeStyle = '#111827';
            context.setLineDash([6, 4]);
            context.lineWidth = 2;
            context.beginPath();
            context.moveTo(x, u.bbox.top);
            context.lineTo(x, u.bbox.top + u.bbox.height);
            context.stroke();
            context.restore();
          },
        ],
      },
    };
    const created = new uPlot(options, props.data, target);
    plot.current = created;
    const onClick = () => {
      const left = created.cursor.left;
      if (latest.current.onPick && left !== undefined && left >= 0) latest.current.onPick(created.posToVal(left, 'x'));
    };
    created.over.addEventListener('click', onClick);
    const resize = new ResizeObserver(() => created.setSize({ width: Math.max(320, target.clientWidth), height: props.height ?? 220 }));
    resize.observe(target);
    return () => {
      resize.disconnect();
      created.destroy();
      plot.current = null;
    };
  }, [shape]);

  useEffect(() => {
    plot.current?.setData(props.data);
  }, [props.data]);

  useEffect(() => {
    plot.current?.redraw(false, false);
  }, [props.marker]);

  return <div class="chart" ref={container} data-testid={props.testId} />;
}
