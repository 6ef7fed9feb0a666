import type { ScreeningLabel } from '../api/types';

export const LABEL_COLORS: Record<ScreeningLabel, string> = {
  legit: 'green',
  marketing: 'yellow',
  spam: 'red',
  unknown: 'gray',
};

export const LABEL_TEXT: Record<ScreeningLabel, string> = {
  legit: 'Legit',
  marketing: 'Marketing',
  spam: 'Spam',
  unknown: 'Unknown',
};
