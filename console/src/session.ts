/**
 * The access key the console signs in with. Kept in sessionStorage: it lasts as long as the tab,
 * is not shared with other tabs, and is gone when the tab closes. Never in localStorage or a cookie.
 */
const KEY_ITEM = 'litebase.console.key';

export const session = {
  key: (): string | null => sessionStorage.getItem(KEY_ITEM),
  signIn: (key: string): void => sessionStorage.setItem(KEY_ITEM, key),
  signOut: (): void => sessionStorage.removeItem(KEY_ITEM),
};
