import { describe, expect, it } from 'vitest';
import { parseServerMessage } from './messages';

describe('parseServerMessage', () => {
  it('reads an entries frame', () => {
    const frame = {
      type: 'entries',
      mode: 'resume',
      truncated: true,
      entries: [{ id: '1-0', topic: 'sports', doc: 'doc:{1}', article: { id: '1', title: 'Cup final', text: 'x' } }],
    };
    expect(parseServerMessage(JSON.stringify(frame))).toEqual(frame);
  });

  it('keeps expired articles as null and drops malformed entries', () => {
    const frame = { type: 'entries', mode: 'live', entries: [{ id: '1-0', topic: 't', doc: 'd', article: null }, { topic: 'no id' }, 7] };
    const parsed = parseServerMessage(JSON.stringify(frame));
    expect(parsed).toEqual({
      type: 'entries',
      mode: 'live',
      truncated: false,
      entries: [{ id: '1-0', topic: 't', doc: 'd', article: null }],
    });
  });

  it('reads an error frame', () => {
    expect(parseServerMessage('{"type":"error","message":"auth failed"}')).toEqual({ type: 'error', message: 'auth failed' });
  });

  it('ignores what it does not understand', () => {
    expect(parseServerMessage('not json')).toBeNull();
    expect(parseServerMessage('"text"')).toBeNull();
    expect(parseServerMessage('{"type":"pong"}')).toBeNull();
  });
});
