// Browser calls with Twilio's Voice SDK. The SDK is loaded on demand (its own chunk), with an access token
// from POST /api/voice/token. Everything the SDK or the server cannot do is said plainly on the page.
import { Alert, Anchor, Badge, Button, Card, Group, Select, SimpleGrid, Stack, Text, TextInput } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useCallback, useEffect, useRef, useState } from 'react';
import { Link } from 'react-router';
import { api, isApiError } from '../api/client';
import { ErrorState, Loading, PageTitle } from '../components/common';
import { formatDuration, formatPhone } from '../lib/format';

type VoiceSdk = typeof import('@twilio/voice-sdk');
type Device = InstanceType<VoiceSdk['Device']>;
type Call = InstanceType<VoiceSdk['Call']>;

type DeviceState = 'loading' | 'unsupported' | 'registering' | 'ready' | 'error';
type CallState = 'idle' | 'connecting' | 'ringing' | 'open' | 'ended';

const E164 = /^\+[1-9]\d{1,14}$/;
const KEYS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '0', '#'];

function useVoiceToken() {
  return useQuery({
    queryKey: ['voice-token'],
    queryFn: () => api.voiceToken(),
    staleTime: Infinity,
    gcTime: 0,
    retry: false,
  });
}

export default function DialerPage() {
  const token = useVoiceToken();
  const [deviceState, setDeviceState] = useState<DeviceState>('loading');
  const [deviceError, setDeviceError] = useState<string | null>(null);
  const [callState, setCallState] = useState<CallState>('idle');
  const [muted, setMuted] = useState(false);
  const [to, setTo] = useState('');
  const [callerId, setCallerId] = useState<string | null>(null);
  const [startedAt, setStartedAt] = useState<number | null>(null);
  const [now, setNow] = useState(Date.now());
  const device = useRef<Device | null>(null);
  const call = useRef<Call | null>(null);

  const jwt = token.data?.token;
  useEffect(() => {
    if (token.data && !callerId) setCallerId(token.data.caller_ids[0] ?? null);
  }, [token.data, callerId]);

  useEffect(() => {
    if (!jwt) return;
    let cancelled = false;
    let dev: Device | null = null;
    (async () => {
      let sdk: VoiceSdk;
      try {
        sdk = await import('@twilio/voice-sdk');
      } catch (e) {
        if (!cancelled) {
          setDeviceState('error');
          setDeviceError(`The Voice SDK could not be loaded: ${(e as Error).message}`);
        }
        return;
      }
      if (cancelled) return;
      if (!sdk.Device.isSupported) {
        setDeviceState('unsupported');
        return;
      }
      dev = new sdk.Device(jwt, { logLevel: 'warn', closeProtection: true });
      device.current = dev;
      dev.on('registered', () => !cancelled && setDeviceState('ready'));
      dev.on('error', (err: { message?: string }) => {
        if (cancelled) return;
        setDeviceError(err?.message ?? String(err));
        // An error before registration means the device cannot place calls.
        setDeviceState((s) => (s === 'ready' ? s : 'error'));
      });
      dev.on('unregistered', () => !cancelled && setDeviceState((s) => (s === 'ready' ? 'registering' : s)));
      dev.on('tokenWillExpire', async () => {
        try {
          const fresh = await api.voiceToken();
          dev?.updateToken(fresh.token);
        } catch (e) {
          setDeviceError(`Could not renew the voice token: ${(e as Error).message}`);
        }
      });
      setDeviceState('registering');
      try {
        await dev.register();
      } catch (e) {
        if (!cancelled) {
          setDeviceState('error');
          setDeviceError((e as Error).message);
        }
      }
    })();
    return () => {
      cancelled = true;
      dev?.destroy();
      device.current = null;
    };
  }, [jwt]);

  useEffect(() => {
    if (callState !== 'open') return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [callState]);

  const dial = useCallback(async () => {
    const dev = device.current;
    if (!dev || !E164.test(to)) return;
    setCallState('connecting');
    setMuted(false);
    try {
      const params: Record<string, string> = { To: to };
      if (callerId) params.CallerId = callerId;
      const c = await dev.connect({ params });
      call.current = c;
      c.on('ringing', () => setCallState('ringing'));
      c.on('accept', () => {
        setStartedAt(Date.now());
        setCallState('open');
      });
      const end = () => {
        setCallState('ended');
        call.current = null;
      };
      c.on('disconnect', end);
      c.on('cancel', end);
      c.on('reject', end);
      c.on('error', (err: { message?: string }) => setDeviceError(err?.message ?? 'Call error'));
    } catch (e) {
      setCallState('idle');
      setDeviceError((e as Error).message);
    }
  }, [to, callerId]);

  const hangUp = () => call.current?.disconnect();
  const toggleMute = () => {
    const next = !muted;
    call.current?.mute(next);
    setMuted(next);
  };
  const inCall = callState === 'connecting' || callState === 'ringing' || callState === 'open';

  if (token.isPending) return <Loading label="Getting a voice token" />;
  if (token.isError) {
    if (isApiError(token.error, 'voice_not_configured') || (isApiError(token.error) && token.error.status === 404)) {
      return (
        <>
          <PageTitle>Dialer</PageTitle>
          <Alert color="yellow" title="The dialer is not set up on this server">
            Browser calls need a Twilio API key and a TwiML App on the voice node ({token.error.message}). Ask
            your operator to configure them; calls to your numbers keep working without it.
          </Alert>
        </>
      );
    }
    return (
      <>
        <PageTitle>Dialer</PageTitle>
        <ErrorState error={token.error} onRetry={() => token.refetch()} />
      </>
    );
  }

  return (
    <>
      <PageTitle
        right={
          <Badge
            color={deviceState === 'ready' ? 'green' : deviceState === 'error' || deviceState === 'unsupported' ? 'red' : 'gray'}
            variant="dot"
          >
            {deviceState === 'ready' ? 'Ready' : deviceState === 'registering' || deviceState === 'loading' ? 'Connecting…' : 'Unavailable'}
          </Badge>
        }
      >
        Dialer
      </PageTitle>
      {deviceState === 'unsupported' && (
        <Alert color="red" mb="md" title="This browser cannot place calls">
          Twilio's Voice SDK needs WebRTC and microphone access, which this browser does not offer.
        </Alert>
      )}
      {deviceError && (
        <Alert color="red" mb="md" withCloseButton onClose={() => setDeviceError(null)} title="Voice error">
          {deviceError}
        </Alert>
      )}
      <Card withBorder maw={420}>
        <Stack>
          <TextInput
            label="Number to call"
            placeholder="+15551234567"
            type="tel"
            value={to}
            onChange={(e) => setTo(e.currentTarget.value.replace(/[^\d+]/g, ''))}
            error={to && !E164.test(to) ? 'Use the international format, e.g. +15551234567' : undefined}
            disabled={inCall}
          />
          <Select
            label="Show as caller ID"
            data={token.data.caller_ids.map((n) => ({ value: n, label: formatPhone(n) }))}
            value={callerId}
            onChange={setCallerId}
            disabled={inCall || token.data.caller_ids.length === 0}
            placeholder={token.data.caller_ids.length === 0 ? 'No number on this account' : undefined}
          />
          <SimpleGrid cols={3} spacing={6}>
            {KEYS.map((k) => (
              <Button
                key={k}
                variant="default"
                onClick={() => (callState === 'open' ? call.current?.sendDigits(k) : setTo((t) => (t || '+') + k))}
              >
                {k}
              </Button>
            ))}
          </SimpleGrid>
          {inCall ? (
            <Group grow>
              <Button color="red" onClick={hangUp}>
                Hang up
              </Button>
              <Button variant="light" onClick={toggleMute} disabled={callState !== 'open'}>
                {muted ? 'Unmute' : 'Mute'}
              </Button>
            </Group>
          ) : (
            <Button color="green" onClick={dial} disabled={deviceState !== 'ready' || !E164.test(to)}>
              Call
            </Button>
          )}
          <Text size="sm" c="dimmed" aria-live="polite">
            {callState === 'connecting' && 'Connecting…'}
            {callState === 'ringing' && 'Ringing…'}
            {callState === 'open' && startedAt && `In call · ${formatDuration((now - startedAt) / 1000)}`}
            {callState === 'ended' && 'Call ended.'}
            {callState === 'idle' &&
              (deviceState === 'ready'
                ? `Ready to call as ${token.data.identity}.`
                : deviceState === 'error'
                  ? 'Twilio could not be reached, so calls cannot be placed from this browser right now.'
                  : 'Connecting to Twilio…')}
          </Text>
        </Stack>
      </Card>
      <Text size="sm" c="dimmed" mt="md">
        Calls placed here are recorded and transcribed like any other; follow them under{' '}
        <Anchor component={Link} to="/live">
          Live calls
        </Anchor>
        .
      </Text>
    </>
  );
}
