"""Sessions: where each account's WhatsApp keys live, moving them, keeping them connected."""
