# callpark: keep the park orbits of contrib/callpark.example.toml (701-799, *7000-*7099) as
# dialled. Lync's deployment guide: orbits must not be normalized. Priority 0 puts the rule
# above every other rule of the dial plan; a rule that maps an orbit to itself protects it.
# One line per dial plan your users have (Get-CsDialPlan | Select Identity); then check with
#   callpark lint --orbits "701-799,*7000-*7099" --lync protect-orbits.ps1 --lync <exported rules>
New-CsVoiceNormalizationRule -Parent 'Global' -Name 'Keep park orbits' -Pattern '^(70[1-9]|7[1-9]\d|\*70\d{2})$' -Translation '$1' -Priority 0 -IsInternalExtension $true -Description 'callpark orbits stay as dialled'
New-CsVoiceNormalizationRule -Parent 'Site:Redmond' -Name 'Keep park orbits' -Pattern '^(70[1-9]|7[1-9]\d|\*70\d{2})$' -Translation '$1' -Priority 0 -IsInternalExtension $true -Description 'callpark orbits stay as dialled'
