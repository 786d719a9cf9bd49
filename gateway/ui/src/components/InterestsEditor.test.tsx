// @vitest-environment jsdom
import { act, cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Topic } from '../lib/types';
import { InterestsEditor } from './InterestsEditor';

const topic = (slug: string): Topic => ({ slug, description: `${slug} news`, examples: 0, default: true, ready: true });
const TOPICS = [topic('finance'), topic('health'), topic('sports')];

function reply(status: number, body: unknown) {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

const checkbox = (slug: string) => screen.getByTestId(`interest-${slug}`) as HTMLInputElement;

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe('InterestsEditor', () => {
  it('starts from the saved interests and saves the checked topics with PUT', async () => {
    const fetchMock = vi.fn(async (_url: string, init?: RequestInit) =>
      init?.method === 'PUT'
        ? reply(200, { user: 'alice', interests: ['finance', 'health'] })
        : reply(200, { user: 'alice', interests: ['sports'] }),
    );
    vi.stubGlobal('fetch', fetchMock);
    render(<InterestsEditor user="alice" token="tok" topics={TOPICS} />);

    await waitFor(() => expect(checkbox('sports').checked).toBe(true));
    expect(checkbox('finance').checked).toBe(false);
    expect((screen.getByTestId('interests-save') as HTMLButtonElement).disabled).toBe(true);

    fireEvent.click(checkbox('sports'));
    fireEvent.click(checkbox('health'));
    fireEvent.click(checkbox('finance'));
    await act(async () => {
      fireEvent.click(screen.getByTestId('interests-save'));
    });

    const [url, init] = fetchMock.mock.calls[1]!;
    expect(url).toBe('/api/users/alice/interests');
    expect(init?.method).toBe('PUT');
    expect(JSON.parse(String(init?.body))).toEqual({ interests: ['finance', 'health'] });
    expect(new Headers(init?.headers).get('Authorization')).toBe('Bearer tok');
    expect(screen.getByTestId('interests-saved')).toBeTruthy();
    expect(checkbox('sports').checked).toBe(false);
  });

  it('shows the gateway error when saving fails, keeping the choice', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async (_url: string, init?: RequestInit) =>
        init?.method === 'PUT' ? reply(400, { error: 'unknown topic: nope' }) : reply(200, { user: 'bob', interests: [] }),
      ),
    );
    render(<InterestsEditor user="bob" token={null} topics={TOPICS} />);
    await waitFor(() => expect(screen.getByTestId('interest-health')).toBeTruthy());
    fireEvent.click(checkbox('health'));
    await act(async () => {
      fireEvent.click(screen.getByTestId('interests-save'));
    });
    expect(screen.getByTestId('interests-error').textContent).toBe('Could not save: unknown topic: nope');
    expect(checkbox('health').checked).toBe(true);
  });

  it('shows why the interests could not be loaded', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async () => reply(401, { error: 'token required' })),
    );
    render(<InterestsEditor user="carol" token={null} topics={TOPICS} />);
    await waitFor(() => expect(screen.getByTestId('interests-error').textContent).toBe('Could not load interests: token required'));
  });
});
