#!/usr/bin/env python3
"""Writes src/forward.rs: one forwarding function per CK_FUNCTION_LIST entry of cryptoki-sys."""
import re
import sys
# usage: gen-forward.py <cryptoki-sys>/src/bindings/x86_64-unknown-linux-gnu.rs; then cargo fmt
f=open(sys.argv[1]).read()
body=re.search(r'pub struct CK_FUNCTION_LIST \{(.*?)\n\}',f,re.S).group(1)
names=re.findall(r'pub (C_\w+): CK_C_\w+',body)
SPECIAL={'C_GetSlotInfo','C_GetTokenInfo','C_GetMechanismList','C_GetMechanismInfo','C_OpenSession','C_Login','C_FindObjects','C_EncryptInit','C_Encrypt','C_EncryptUpdate','C_DecryptInit','C_Decrypt','C_DecryptUpdate','C_WrapKey','C_UnwrapKey'}
out=["//! Generated from cryptoki-sys 0.5's `CK_FUNCTION_LIST` (PKCS#11 v2.40 section 5):",
"//! one forwarding function per entry, each run through [`crate::call`], and the table.",
"#![allow(non_snake_case, clippy::missing_safety_doc, clippy::too_many_arguments)]",
"use cryptoki_sys::*;",""]
table=[]
for n in names:
    if n=='C_GetFunctionList':
        table.append('        C_GetFunctionList: Some(crate::C_GetFunctionList),'); continue
    m=re.search(r'pub type CK_%s =\s*::std::option::Option<\s*unsafe extern "C" fn\((.*?)\)\s*-> CK_RV,?\s*>;'%n,f,re.S)
    args=[a.strip() for a in m.group(1).split(',') if a.strip()]
    anames=[a.split(':')[0].strip() for a in args]
    t0=args[0].split(':')[1].strip() if args else ''
    target = 'crate::Target::Session(%s)'%anames[0] if t0=='CK_SESSION_HANDLE' else ('crate::Target::Slot(%s)'%anames[0] if t0=='CK_SLOT_ID' else 'crate::Target::None')
    a=", ".join(anames)
    if n in SPECIAL:
        inner='crate::special::%s(%s)'%(n,a)
    else:
        inner='match crate::real().%s { Some(f) => f(%s), None => CKR_FUNCTION_NOT_SUPPORTED }'%(n,a)
    out.append('''/// Forwards `%s`.
pub unsafe extern "C" fn %s(%s) -> CK_RV {
    crate::call("%s", %s, || unsafe { %s })
}
'''%(n,n,", ".join(args),n,target,inner))
    table.append('        %s: Some(%s),'%(n,n))
out.append('''/// The table handed out by `C_GetFunctionList`.
pub static TABLE: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
        version: CK_VERSION { major: 2, minor: 40 },
%s
};
'''%"\n".join(table))
open(__import__('os').path.join(__import__('os').path.dirname(__file__),'src','forward.rs'),'w').write("\n".join(out))
