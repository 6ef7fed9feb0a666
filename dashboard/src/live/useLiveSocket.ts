import { useEffect, useRef, useState } from 'react';
import { api, buildQuery } from '../api/client';
import type { LiveMessage } from '../api/types';
import { LiveSocket, liveUrl, type LiveStatus } from './socket';

export interface UseLiveSocketOptions {
  callId?: string;
  enabled?: boolean;
  onMessage: (msg: LiveMessage) => void;
  onOpen?: (isReconnect: boolean) => void;
  onNotFound?: () => void;
}

/** Opens `WS /api/calls/live` (optionally for one call) while mounted; returns the connection status. */
export function useLiveSocket({ callId, enabled = true, onMessage, onOpen, onNotFound }: UseLiveSocketOptions) {
  const [status, setStatus] = useState<LiveStatus>('connecting');
  const handlers = useRef({ onMessage, onOpen, onNotFound });
  handlers.current = { onMessage, onOpen, onNotFound };

  useEffect(() => {
    if (!enabled) {
      setStatus('closed');
      return;
    }
    const query = buildQuery({ call_id: callId, tenant_id: api.tenantId });
    const socket = new LiveSocket({
      url: liveUrl(`/api/calls/live${query}`),
      onMessage: (m) => handlers.current.onMessage(m),
      onOpen: (r) => handlers.current.onOpen?.(r),
      onNotFound: () => handlers.current.onNotFound?.(),
      onUnauthorized: () => api.onUnauthorized?.(),
      onStatus: setStatus,
    });
    socket.start();
    return () => socket.stop();
  }, [callId, enabled]);

  return status;
}
