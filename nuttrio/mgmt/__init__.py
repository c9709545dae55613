"""The manager: upsmon and upssched semantics and the Shutdown Story (RFC 9271 section 5)."""
