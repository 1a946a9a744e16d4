# Site:Redmond dial plan, exported with Get-CsVoiceNormalizationRule -Identity Site:Redmond/* .
# 3-digit and 4-digit internal dialling, site codes, *-feature codes, E.164 rewrites.
# Park orbits of callpark.example.toml: 701-799 and *7000-*7099.
New-CsDialPlan -Identity Site:Redmond -SimpleName Redmond -Description "Redmond campus"

New-CsVoiceNormalizationRule -Parent Site:Redmond -Name 'Keep park orbits 701-709' `
    -Description 'Added when orbit 701 rang a desk phone' `
    -Pattern '^(70[1-9])$' -Translation '$1' -IsInternalExtension $true
New-CsVoiceNormalizationRule -Parent Site:Redmond -Name 'Redmond 3 digit' -Pattern '^(?!5)([1-9]\d{2})$' -Translation '+14255550$1' -IsInternalExtension $true
New-CsVoiceNormalizationRule -Parent Site:Redmond -Name 'Redmond 4 digit' -Pattern '^(?<ext>5\d{3})$' -Translation '+1425555${ext}' -IsInternalExtension $true
New-CsVoiceNormalizationRule -Parent Site:Redmond -Name 'Site code Dublin' -Pattern '^83(\d{4})$' -Translation '+35312555$1'
New-CsVoiceNormalizationRule -Parent Site:Redmond -Name 'Site code Seattle' -Pattern '^84(\d{5})$' -Translation '+1206555$1'
New-CsVoiceNormalizationRule -Parent Site:Redmond -Name 'Feature codes *70xx' -Pattern '^\*(70[0-4]\d)$' -Translation '+14255557$1'
New-CsVoiceNormalizationRule -Parent Site:Redmond -Name 'Hash codes' -Pattern '^#(\d{2,4})$' -Translation '+14255559$1'
New-CsVoiceNormalizationRule -Parent Site:Redmond -Name 'Keep star codes' -Pattern '^(\*\d{3,5})$' -Translation '$1'
New-CsVoiceNormalizationRule -Parent Site:Redmond -Name 'Star to operator' -Pattern '^\*(\d+)$' -Translation '+14255550100'
New-CsVoiceNormalizationRule -Parent Site:Redmond -Name 'NANP 10 digit' -Pattern '^1?([2-9]\d{9})$' -Translation '+1$1'
New-CsVoiceNormalizationRule -Parent Site:Redmond -Name 'International' -Pattern '^011(\d{7,15})$' -Translation '+$1'
# The catch-all of the Lync dial plan tool, last.
New-CsVoiceNormalizationRule -Parent Site:Redmond -Name 'Local 7 digit' -Pattern '^([2-9]\d{6})$' -Translation '+1425$1'
