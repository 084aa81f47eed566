/**
 * Chart colours from JupyterLab's CSS variables, so charts follow light and dark themes.
 */
export interface IChartColors {
  text: string;
  muted: string;
  grid: string;
}

export function themeColors(node: Element): IChartColors {
  const style = getComputedStyle(node);
  const read = (name: string, fallback: string) => style.getPropertyValue(name).trim() || fallback;
  return {
    text: read('--jp-ui-font-color1', '#212121'),
    muted: read('--jp-ui-font-color2', '#616161'),
    grid: read('--jp-border-color2', '#e0e0e0')
  };
}
