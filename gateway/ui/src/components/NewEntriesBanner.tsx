/** The sticky "N new" button over a feed whose reader is scrolled down while entries arrive. */
export function NewEntriesBanner({ count, onShow }: { count: number; onShow: () => void }) {
  if (count === 0) return null;
  return (
    <div className="new-banner-slot">
      <button type="button" className="new-banner" data-testid="new-banner" onClick={onShow}>
        ↑ {count} new
      </button>
    </div>
  );
}
