import { Badge, Box, Group, Paper, Stack, Text } from '@mantine/core';
import type { Speaker, Turn } from '../api/types';
import { formatMs, timingSteps } from '../lib/format';

const SPEAKER: Record<Speaker, { name: string; bg: string; align: 'left' | 'right' }> = {
  caller: { name: 'Caller', bg: 'var(--mantine-color-gray-1)', align: 'left' },
  agent: { name: 'Agent', bg: 'var(--mantine-color-indigo-0)', align: 'right' },
  owner: { name: 'Owner', bg: 'var(--mantine-color-teal-0)', align: 'right' },
};

/** Offset of `at` from the call's start, as m:ss. */
function offset(at: string, start: string | undefined): string | null {
  if (!start) return null;
  const d = Math.round((Date.parse(at) - Date.parse(start)) / 1000);
  if (!Number.isFinite(d) || d < 0) return null;
  return `${Math.floor(d / 60)}:${String(d % 60).padStart(2, '0')}`;
}

export function TurnTimingsLine({ turn }: { turn: Turn }) {
  const steps = timingSteps(turn.timings);
  if (steps.length === 0) return null;
  return (
    <Group gap={6} mt={4} data-testid="turn-timings" justify={SPEAKER[turn.speaker].align === 'right' ? 'flex-end' : 'flex-start'}>
      {steps.map((s) => (
        <Text
          key={s.key}
          size="xs"
          c={s.key === 'total' ? (s.ms > 1500 ? 'red.7' : 'dark.4') : 'dimmed'}
          fw={s.key === 'total' ? 600 : 400}
          data-timing={s.key}
        >
          {s.label} {formatMs(s.ms)}
        </Text>
      ))}
    </Group>
  );
}

export function TranscriptView({ turns, callStartedAt }: { turns: Turn[]; callStartedAt?: string }) {
  return (
    <Stack gap="sm" role="log" aria-label="Transcript">
      {turns.map((t) => {
        const s = SPEAKER[t.speaker];
        const off = offset(t.at, callStartedAt);
        return (
          <Box
            key={t.seq}
            data-seq={t.seq}
            data-speaker={t.speaker}
            data-align={s.align}
            style={{ display: 'flex', flexDirection: 'column', alignItems: s.align === 'right' ? 'flex-end' : 'flex-start' }}
          >
            <Group gap={6} mb={2}>
              <Text size="xs" fw={600} c="dimmed">
                {s.name}
              </Text>
              {off && (
                <Text size="xs" c="dimmed">
                  {off}
                </Text>
              )}
              {t.interrupted && (
                <Badge size="xs" color="orange" variant="light">
                  interrupted
                </Badge>
              )}
            </Group>
            <Paper className="cg-bubble" px="sm" py={6} radius="lg" style={{ background: s.bg }}>
              <Text size="sm">{t.text}</Text>
            </Paper>
            <TurnTimingsLine turn={t} />
          </Box>
        );
      })}
    </Stack>
  );
}
