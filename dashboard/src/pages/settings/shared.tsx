import { useMutation, useQueryClient, type QueryKey } from '@tanstack/react-query';
import { notifyError, notifySuccess } from '../../components/common';

/** A mutation that reports success or failure as a notification and refreshes `invalidate`. */
export function useSettingsMutation<TVars, TResult>(
  mutationFn: (vars: TVars) => Promise<TResult>,
  opts: { success: string | ((r: TResult, v: TVars) => string); failure: string; invalidate: QueryKey },
) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn,
    onSuccess: (r, v) => {
      notifySuccess(typeof opts.success === 'function' ? opts.success(r, v) : opts.success);
      void qc.invalidateQueries({ queryKey: opts.invalidate });
    },
    onError: (e) => notifyError(opts.failure, e),
  });
}

export const E164 = /^\+[1-9]\d{1,14}$/;
