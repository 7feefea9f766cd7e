-- sentinel:no-transaction
-- The seats of one section, for the seat map (`GET /v1/events/{event}/seats?section=…`,
-- InventoryReads.seatMap). No index served that read: each one went through all of the event's
-- seats by the primary key and kept one section's, so the map of a 500-seat section of a
-- 60,000-seat event read 60,000 rows — on the database the sale's commits need, during the sale.
-- The indexed columns never change after provisioning, so the seat updates of a sale stay HOT.
-- Built CONCURRENTLY, as 0011: writes to seats go on meanwhile.
CREATE INDEX CONCURRENTLY IF NOT EXISTS seats_by_section ON seats (event_id, section);
