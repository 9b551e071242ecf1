"""The customer book in and out of files (SPEC §6), whichever door the file came through.

- `sheets`: a file's rows of cells — CSV in any encoding a detector can read with
  confidence, Excel workbooks (.xlsx, .xls) and vCard files (.vcf) — streamed, so
  memory stays bounded and a row cap can be checked before anything is kept.
- `columns`: what each header means, for the layouts that other tools export
  (Google, Outlook, HubSpot, Zoho, Pipedrive, Salesforce, 企业微信, ledgers …),
  and a `Mapping` a person can change column by column.
- `values`: one row's cells as a customer: names joined as their script writes
  them, several phones and e-mails, an unreadable cell kept in the notes.
- `importer`: rows matched to the book (our `#`, phone, e-mail; a different name
  is a possible duplicate, not a merge), owners matched to members, and batches
  written in their own transactions.
- `export`: the book as CSV or .xlsx.
"""
