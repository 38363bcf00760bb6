// Classification metrics at a threshold, the ROC curve and its area, histograms: pure
// functions of the scores, no DOM. "Positive" is abnormal (class 2-5); a beat is flagged
// when its MSE is strictly greater than the threshold, as the server decides.
// tests/test_explorer_browser.py checks these against scikit-learn on the same scores.

export function confusion(scores, labels, threshold) {
  let tp = 0, fp = 0, tn = 0, fn = 0;
  for (let i = 0; i < scores.length; i++) {
    const flagged = scores[i] > threshold;
    if (labels[i]) { if (flagged) tp++; else fn++; } else if (flagged) fp++; else tn++;
  }
  return { tp, fp, tn, fn };
}

const ratio = (a, b) => (b === 0 ? 0 : a / b); // scikit-learn's zero_division=0

export function metricsOf({ tp, fp, tn, fn }) {
  const precision = ratio(tp, tp + fp);
  const recall = ratio(tp, tp + fn);
  return {
    precision,
    recall,
    f1: ratio(2 * tp, 2 * tp + fp + fn),
    fpr: ratio(fp, fp + tn),
    fnr: ratio(fn, fn + tp),
    accuracy: ratio(tp + tn, tp + tn + fp + fn),
  };
}

export function metricsAt(scores, labels, threshold) {
  const c = confusion(scores, labels, threshold);
  return { confusion: c, ...metricsOf(c) };
}

// The ROC curve as scikit-learn's roc_curve(drop_intermediate=False) draws it: one point
// per distinct score, from (0, 0) to (1, 1), scores taken in decreasing order.
export function rocCurve(scores, labels) {
  const order = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a]);
  const positives = labels.reduce((n, y) => n + (y ? 1 : 0), 0);
  const negatives = labels.length - positives;
  const points = [{ fpr: 0, tpr: 0, threshold: Infinity }];
  let tp = 0, fp = 0;
  for (let k = 0; k < order.length; k++) {
    const i = order[k];
    if (labels[i]) tp++; else fp++;
    if (k === order.length - 1 || scores[order[k + 1]] !== scores[i]) {
      points.push({ fpr: ratio(fp, negatives), tpr: ratio(tp, positives), threshold: scores[i] });
    }
  }
  return points;
}

export function auc(points) {
  let area = 0;
  for (let k = 1; k < points.length; k++) {
    area += (points[k].fpr - points[k - 1].fpr) * (points[k].tpr + points[k - 1].tpr) / 2;
  }
  return area;
}

// Counts per bin of log10(score) over [lo, hi), for normal and abnormal beats apart.
export function histogram(scores, labels, lo, hi, bins) {
  const normal = new Array(bins).fill(0), abnormal = new Array(bins).fill(0);
  const width = (hi - lo) / bins;
  for (let i = 0; i < scores.length; i++) {
    const b = Math.min(bins - 1, Math.max(0, Math.floor((Math.log10(scores[i]) - lo) / width)));
    (labels[i] ? abnormal : normal)[b]++;
  }
  return { normal, abnormal, lo, hi, width };
}
