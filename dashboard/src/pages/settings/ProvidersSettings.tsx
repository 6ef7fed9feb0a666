import { Badge, Button, Card, Group, PasswordInput, Select, SimpleGrid, Stack, Text, TextInput, Title } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { api } from '../../api/client';
import { PROVIDER_CHOICES, type ProviderInput, type ProviderKind, type ProviderSetting } from '../../api/types';
import { ErrorState, Loading, PageTitle } from '../../components/common';
import { ConfirmButton } from '../../components/ConfirmButton';
import { useSettingsMutation } from './shared';

const KIND_TITLE: Record<ProviderKind, string> = {
  stt: 'Speech to text',
  tts: 'Text to speech',
  llm: 'Language model',
};
const PROVIDER_NAMES: Record<string, string> = {
  offline: 'Offline (built in)',
  deepgram: 'Deepgram',
  openai: 'OpenAI-compatible',
  elevenlabs: 'ElevenLabs',
};

/** The body of a save: the key is sent only when typed, or as null to erase it. */
export function providerInput(
  provider: string,
  baseUrl: string,
  model: string,
  newKey: string,
  eraseKey: boolean,
): ProviderInput {
  const input: ProviderInput = { provider, base_url: baseUrl.trim() || null, model: model.trim() || null };
  if (eraseKey) input.api_key = null;
  else if (newKey) input.api_key = newKey;
  return input;
}

function ProviderCard({ p }: { p: ProviderSetting }) {
  const [provider, setProvider] = useState(p.provider);
  const [baseUrl, setBaseUrl] = useState(p.base_url ?? '');
  const [model, setModel] = useState(p.model ?? '');
  const [key, setKey] = useState('');
  const save = useSettingsMutation((input: ProviderInput) => api.putProvider(p.kind, input), {
    success: `${KIND_TITLE[p.kind]} saved.`,
    failure: 'Could not save the provider',
    invalidate: ['providers'],
  });
  const reset = useSettingsMutation(() => api.resetProvider(p.kind), {
    success: `${KIND_TITLE[p.kind]} is back to the offline default.`,
    failure: 'Could not reset the provider',
    invalidate: ['providers'],
  });
  const offline = provider === 'offline';
  return (
    <Card withBorder>
      <Stack gap="xs">
        <Group justify="space-between">
          <Title order={3} size="h5">
            {KIND_TITLE[p.kind]}
          </Title>
          {p.has_api_key ? (
            <Badge color="green" variant="light">
              key stored
            </Badge>
          ) : (
            !offline && (
              <Badge color="gray" variant="light">
                no key
              </Badge>
            )
          )}
        </Group>
        <Select
          label="Provider"
          data={PROVIDER_CHOICES[p.kind].map((v) => ({ value: v, label: PROVIDER_NAMES[v] ?? v }))}
          value={provider}
          onChange={(v) => v && setProvider(v)}
          allowDeselect={false}
        />
        {!offline && (
          <>
            <TextInput label="Model" placeholder="provider default" value={model} onChange={(e) => setModel(e.currentTarget.value)} />
            <TextInput label="Base URL" placeholder="provider default" value={baseUrl} onChange={(e) => setBaseUrl(e.currentTarget.value)} />
            <PasswordInput
              label="API key"
              description={p.has_api_key ? 'A key is stored and never shown. Type a new one to replace it.' : 'Stored encrypted; it is never shown again.'}
              placeholder={p.has_api_key ? '•••••••• (unchanged)' : ''}
              autoComplete="off"
              value={key}
              onChange={(e) => setKey(e.currentTarget.value)}
            />
          </>
        )}
        <Group justify="space-between" mt="xs">
          <Group gap={4}>
            {!p.is_default && (
              <ConfirmButton
                size="xs"
                variant="subtle"
                color="gray"
                title="Back to the offline default?"
                message="The stored settings and API key are erased."
                confirmLabel="Reset"
                onConfirm={() => reset.mutate(undefined)}
              >
                Use offline default
              </ConfirmButton>
            )}
            {p.has_api_key && !offline && (
              <ConfirmButton
                size="xs"
                variant="subtle"
                color="red"
                title="Erase the API key?"
                message="Calls fall back to the offline pipeline until a new key is saved."
                confirmLabel="Erase key"
                onConfirm={() => save.mutate(providerInput(provider, baseUrl, model, '', true))}
              >
                Erase key
              </ConfirmButton>
            )}
          </Group>
          <Button
            size="xs"
            loading={save.isPending}
            onClick={() =>
              offline
                ? reset.mutate(undefined)
                : save.mutate(providerInput(provider, baseUrl, model, key, false), { onSuccess: () => setKey('') })
            }
          >
            Save
          </Button>
        </Group>
      </Stack>
    </Card>
  );
}

export function ProvidersSettings() {
  const list = useQuery({ queryKey: ['providers'], queryFn: () => api.listProviders() });
  return (
    <>
      <PageTitle>AI providers</PageTitle>
      <Text size="sm" c="dimmed" mb="md">
        The offline pipeline needs no account. Cloud providers are faster and sound more natural; their keys are
        write-only.
      </Text>
      {list.isPending ? (
        <Loading />
      ) : list.isError ? (
        <ErrorState error={list.error} onRetry={() => list.refetch()} />
      ) : (
        <SimpleGrid cols={{ base: 1, md: 3 }}>
          {list.data.items.map((p) => (
            <ProviderCard key={`${p.kind}:${p.updated_at}:${p.has_api_key}`} p={p} />
          ))}
        </SimpleGrid>
      )}
    </>
  );
}
