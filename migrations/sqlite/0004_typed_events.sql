-- Events used to be stored as the JSON sent to clients; they are now the typed domain
-- events of src/bulk/events.ts. Old progress snapshots are dropped (they are optional).
UPDATE `batch_events` SET
  `type` = 'row',
  `data` = json_object(
    'type', 'row',
    'row', json_extract(`data`, '$.row'),
    'status', json_extract(`data`, '$.status'),
    'hospitalId', json_extract(`data`, '$.hospital_id'),
    'errorMessage', json_extract(`data`, '$.error_message'),
    'attempts', json_extract(`data`, '$.attempts'),
    'progress', json('null')
  )
WHERE `type` = 'row' AND json_extract(`data`, '$.type') IS NULL;
--> statement-breakpoint
UPDATE `batch_events` SET `type` = 'activated', `data` = json_object('type', 'activated')
WHERE `type` = 'batch' AND json_extract(`data`, '$.batch_activated') = 1;
--> statement-breakpoint
UPDATE `batch_events` SET
  `type` = 'status',
  `data` = json_object('type', 'status', 'status', json_extract(`data`, '$.status'), 'error', json_extract(`data`, '$.error'))
WHERE `type` = 'batch';
