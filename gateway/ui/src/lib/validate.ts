// The gateway's rules for names in paths (gateway/API.md), checked before calling it.

/** 1-64 bytes of A-Z a-z 0-9 _ - . */
export function isValidUserId(id: string): boolean {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(id);
}

/** 1-64 bytes of a-z 0-9 - _, starting with a letter or digit. */
export function isValidTopicSlug(slug: string): boolean {
  return /^[a-z0-9][a-z0-9_-]{0,63}$/.test(slug);
}
