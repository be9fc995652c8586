"""Renewal by CSV ("Select Users by CSV" → "Import Licence Renewal" → "Renew Licences").

reader: a spreadsheet's bytes as rows (encoding, dialect, header, the e-mail column);
addresses: one cell as an address; preview: rows into csv_import_row, classified;
apply: the classified rows renewed with the allocation rule of portal.domain.licences;
export: CSV downloads safe to open in a spreadsheet.
"""
